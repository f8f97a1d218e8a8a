"""An operator's decision on held earnings and the completion job, committing for real: the
decision holds the order and its supplier order, so completion passes the order by instead of
queueing behind the decision's lines and ledger accounts (and deadlocking with it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.orders.conftest import Live
from tests.orders.helpers import checkout, market, pay
from tests.orders.test_fulfilment import deliver
from tests.settlements.helpers import supplier_balance
from xiaopu.app import create_app
from xiaopu.commissions import service as commissions
from xiaopu.commissions.schemas import HeldDecision
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.models.ledger import Purpose
from xiaopu.orders import fulfilment

pytestmark = pytest.mark.concurrent


@pytest.fixture
async def holding(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    """The same database, served under the `hold` self-purchase policy."""
    settings = live.settings.model_copy(update={"self_purchase_policy": "hold"})
    app = create_app(settings, sessionmaker=live.sessionmaker)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_completion_passes_by_an_order_an_operator_is_deciding(
    live: Live, holding: httpx.AsyncClient, test_clock: Clock
) -> None:
    test_clock.freeze(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))
    async with live.sessionmaker() as session:
        m = await market(holding, session, price=10_000, commission_bps=1000, return_window_days=1)
    supply = m.suppliers[0]
    order = await checkout(holding, m.slug, [(m.variant, 1)], headers=m.keeper.headers)
    await pay(holding, order)
    (part,) = order["supplier_orders"]
    await deliver(holding, supply, part["id"])
    test_clock.advance(timedelta(days=1, seconds=1))

    async with live.sessionmaker() as deciding, deciding.begin():
        await commissions.decide_held(
            deciding, uuid.UUID(part["id"]), HeldDecision(decision="forfeit")
        )
        # The decision is not committed yet: completion must not wait for it.
        async with live.sessionmaker() as completing, completing.begin():
            passed = await asyncio.wait_for(
                fulfilment.complete_due(completing, live.settings), timeout=10
            )
        assert passed == 0
    async with live.sessionmaker() as completing, completing.begin():
        assert await fulfilment.complete_due(completing, live.settings) == 1
    async with live.sessionmaker() as session:
        # Its share and the commission the operator gave back, all payable after completion.
        assert await supplier_balance(session, supply.id, Purpose.payable) == 8_500 + 1_000
        assert await supplier_balance(session, supply.id, Purpose.payable_pending) == 0
        assert await ledger.reconcile(session) == 0
