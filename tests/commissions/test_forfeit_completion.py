"""A self-purchase's held commission forfeited before completion is the supplier's money, and
follows the supplier order to `payable` when it completes, like the supplier's own share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.helpers import checkout, key, market, pay, run_schedule, supplier_act
from xiaopu.app import create_app
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock


@pytest.fixture
async def holding(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(update={"self_purchase_policy": "hold"}), sessionmaker=sessionmaker
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _owed(session: AsyncSession, owner: str, purpose: str) -> int:
    value = await session.scalar(
        text(
            "SELECT coalesce(sum(e.amount_minor), 0) FROM ledger_entries e JOIN ledger_accounts a "
            "ON a.id = e.account_id WHERE a.owner_id = CAST(:o AS uuid) AND a.purpose = :p"
        ),
        {"o": owner, "p": purpose},
    )
    return -int(value or 0)  # credits: what the platform owes


async def test_a_commission_forfeited_before_completion_becomes_payable_with_the_order(
    holding: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    # 10,000 at 10% commission (1,000) and the default platform fee; the keeper buys it.
    m = await market(holding, session, price=10_000, commission_bps=1000)
    supply = m.suppliers[0]
    order = await checkout(holding, m.slug, [(m.variant, 1)], headers=m.keeper.headers)
    assert order["self_purchase"] is True
    await pay(holding, order)
    (part,) = order["supplier_orders"]
    decided = await holding.post(
        f"/v1/operator/commissions/held/{part['id']}",
        json={"decision": "forfeit"},
        headers=m.op.headers | key(),
    )
    assert decided.status_code == 200, decided.text
    owed = await _owed(session, supply.id, "payable_pending")  # its share and the commission

    shipment = {"carrier": "SF", "tracking_number": "SF0001"}
    assert (await supplier_act(holding, supply, part["id"], "ship", shipment)).status_code == 200
    assert (await supplier_act(holding, supply, part["id"], "deliver")).status_code == 200
    test_clock.advance(timedelta(days=8))
    await run_schedule(session, settings, "orders.complete")

    status = await session.scalar(
        text("SELECT status FROM supplier_orders WHERE id = CAST(:p AS uuid)"), {"p": part["id"]}
    )
    assert status == "completed"
    # Everything the supplier is owed for the order is payable now, nothing left pending.
    assert await _owed(session, supply.id, "payable") == owed
    assert await _owed(session, supply.id, "payable_pending") == 0
