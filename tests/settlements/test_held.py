"""A self-purchase held for review and forfeited after completion: the commission comes back
to the supplier as an adjustment line of the next statement."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.helpers import checkout, market, pay, supplier_act
from tests.settlements.helpers import supplier_balance
from xiaopu.app import create_app
from xiaopu.commissions import service as commissions
from xiaopu.commissions.schemas import HeldDecision
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.models.ledger import Purpose
from xiaopu.orders import fulfilment
from xiaopu.settlements import service

MONDAY = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


@pytest.fixture
def holding_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"self_purchase_policy": "hold"})


@pytest.fixture
async def holding(
    holding_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(holding_settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_a_hold_forfeited_after_completion_is_given_back_in_the_statement(
    holding: httpx.AsyncClient,
    session: AsyncSession,
    holding_settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze(MONDAY)
    m = await market(holding, session, price=10_000, commission_bps=1000, return_window_days=1)
    supply = m.suppliers[0]
    order = await checkout(holding, m.slug, [(m.variant, 1)], headers=m.keeper.headers)
    await pay(holding, order)
    (part,) = order["supplier_orders"]
    tracking = {"carrier": "SF", "tracking_number": "SF-HELD-1"}
    assert (await supplier_act(holding, supply, part["id"], "ship", tracking)).status_code == 200
    assert (await supplier_act(holding, supply, part["id"], "deliver")).status_code == 200
    test_clock.advance(timedelta(days=1, seconds=1))
    assert await fulfilment.complete_due(session, holding_settings) == 1
    await commissions.decide_held(session, uuid.UUID(part["id"]), HeldDecision(decision="forfeit"))
    await session.commit()
    owed = await supplier_balance(session, supply.id, Purpose.payable)
    assert owed == 8_500 + 1_000  # its share, and the forfeited commission

    await service.close_due(session, holding_settings, datetime(2026, 12, 6, 16, 10, tzinfo=UTC))
    await session.commit()
    listed = await holding.get(f"/v1/suppliers/{supply.id}/settlements", headers=supply.headers)
    (statement,) = listed.json()["items"]
    assert statement["net_minor"] == owed
    assert statement["commission_minor"] == 1_000 - 1_000
    detail = await holding.get(
        f"/v1/suppliers/{supply.id}/settlements/{statement['id']}",
        headers=supply.headers,
    )
    lines = {ln["kind"]: ln for ln in detail.json()["lines"]}
    assert (lines["sale"]["commission_minor"], lines["sale"]["net_minor"]) == (1_000, 8_500)
    given_back = lines["adjustment"]
    assert given_back["source"] == f"held-forfeit:{part['id']}"
    assert (given_back["commission_minor"], given_back["net_minor"]) == (-1_000, 1_000)
    assert given_back["supplier_order_id"] == part["id"]
