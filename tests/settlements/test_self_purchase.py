"""Self-purchases in statements: a hold forfeited after completion gives the commission back
to the supplier as an adjustment line; under `none` the supplier keeps the commission."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.helpers import Supply, checkout, market, pay, supplier_act
from tests.settlements.helpers import refund_after_completion, supplier_balance
from xiaopu.app import create_app
from xiaopu.commissions import service as commissions
from xiaopu.commissions.schemas import HeldDecision
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.models.ledger import Purpose
from xiaopu.orders import fulfilment
from xiaopu.settlements import service

MONDAY = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


async def _client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def holding_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"self_purchase_policy": "hold"})


@pytest.fixture
async def holding(
    holding_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(holding_settings, sessionmaker):
        yield client


@pytest.fixture
def no_earning_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"self_purchase_policy": "none"})


@pytest.fixture
async def earning_nothing(
    no_earning_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(no_earning_settings, sessionmaker):
        yield client


async def _sold_and_completed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> tuple[Supply, str]:
    """A shopkeeper buys one unit (10,000) in their own shop; it completes. Returns the
    supplier and the supplier order id."""
    test_clock.freeze(MONDAY)
    m = await market(client, session, price=10_000, commission_bps=1000, return_window_days=1)
    supply = m.suppliers[0]
    order = await checkout(client, m.slug, [(m.variant, 1)], headers=m.keeper.headers)
    await pay(client, order)
    (part,) = order["supplier_orders"]
    tracking = {"carrier": "SF", "tracking_number": f"SF-SELF-{uuid.uuid4().hex[:8]}"}
    assert (await supplier_act(client, supply, part["id"], "ship", tracking)).status_code == 200
    assert (await supplier_act(client, supply, part["id"], "deliver")).status_code == 200
    test_clock.advance(timedelta(days=1, seconds=1))
    assert await fulfilment.complete_due(session, settings) == 1
    await session.commit()
    return supply, str(part["id"])


async def _statement(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, supply: Supply
) -> dict[str, Any]:
    await service.close_due(session, settings, datetime(2026, 12, 6, 16, 10, tzinfo=UTC))
    await session.commit()
    listed = await client.get(f"/v1/suppliers/{supply.id}/settlements", headers=supply.headers)
    (statement,) = listed.json()["items"]
    detail = await client.get(
        f"/v1/suppliers/{supply.id}/settlements/{statement['id']}", headers=supply.headers
    )
    assert detail.status_code == 200, detail.text
    result: dict[str, Any] = detail.json()
    return result


async def test_a_hold_forfeited_after_completion_is_given_back_in_the_statement(
    holding: httpx.AsyncClient,
    session: AsyncSession,
    holding_settings: Settings,
    test_clock: Clock,
) -> None:
    supply, part_id = await _sold_and_completed(holding, session, holding_settings, test_clock)
    await commissions.decide_held(session, uuid.UUID(part_id), HeldDecision(decision="forfeit"))
    await session.commit()
    owed = await supplier_balance(session, supply.id, Purpose.payable)
    assert owed == 8_500 + 1_000  # its share, and the forfeited commission

    statement = await _statement(holding, session, holding_settings, supply)
    assert statement["net_minor"] == owed
    assert statement["commission_minor"] == 1_000 - 1_000
    lines = {ln["kind"]: ln for ln in statement["lines"]}
    assert (lines["sale"]["commission_minor"], lines["sale"]["net_minor"]) == (1_000, 8_500)
    given_back = lines["adjustment"]
    assert given_back["source"] == f"held-forfeit:{part_id}"
    assert (given_back["commission_minor"], given_back["net_minor"]) == (-1_000, 1_000)
    assert given_back["supplier_order_id"] == part_id


async def test_under_none_the_supplier_keeps_the_commission(
    earning_nothing: httpx.AsyncClient,
    session: AsyncSession,
    no_earning_settings: Settings,
    test_clock: Clock,
) -> None:
    supply, _ = await _sold_and_completed(earning_nothing, session, no_earning_settings, test_clock)
    owed = await supplier_balance(session, supply.id, Purpose.payable)
    assert owed == 10_000 - 500  # all of the base but the platform's fee
    statement = await _statement(earning_nothing, session, no_earning_settings, supply)
    (sale,) = statement["lines"]
    assert (sale["sales_minor"], sale["commission_minor"]) == (10_000, 0)
    assert (sale["platform_fee_minor"], sale["other_minor"]) == (500, 0)
    assert sale["net_minor"] == statement["payout_minor"] == owed


async def test_a_hold_forfeited_before_completion_is_settled_with_the_sale(
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
    await commissions.decide_held(session, uuid.UUID(part["id"]), HeldDecision(decision="forfeit"))
    await session.commit()
    tracking = {"carrier": "SF", "tracking_number": f"SF-SELF-{uuid.uuid4().hex[:8]}"}
    assert (await supplier_act(holding, supply, part["id"], "ship", tracking)).status_code == 200
    assert (await supplier_act(holding, supply, part["id"], "deliver")).status_code == 200
    test_clock.advance(timedelta(days=1, seconds=1))
    assert await fulfilment.complete_due(session, holding_settings) == 1
    await session.commit()
    owed = await supplier_balance(session, supply.id, Purpose.payable)
    assert owed == 8_500 + 1_000  # its share, and the commission the forfeit gave it
    assert await supplier_balance(session, supply.id, Purpose.payable_pending) == 0

    statement = await _statement(holding, session, holding_settings, supply)
    assert statement["net_minor"] == statement["payout_minor"] == owed
    assert sum(ln["other_minor"] for ln in statement["lines"]) == 0
    assert await supplier_balance(session, supply.id, Purpose.payable) == 0


async def test_a_refund_after_a_forfeit_takes_back_the_sale_not_a_commission(
    holding: httpx.AsyncClient,
    session: AsyncSession,
    holding_settings: Settings,
    test_clock: Clock,
) -> None:
    """The forfeited commission was the supplier's: a refund after completion takes it back
    from the supplier with the sale, and the refund line explains all of it (nothing `other`)."""
    supply, part_id = await _sold_and_completed(holding, session, holding_settings, test_clock)
    await commissions.decide_held(session, uuid.UUID(part_id), HeldDecision(decision="forfeit"))
    await session.commit()
    line_id = await session.scalar(
        text("SELECT id FROM order_lines WHERE supplier_order_id = :p"), {"p": part_id}
    )
    order_id = await session.scalar(
        text("SELECT order_id FROM supplier_orders WHERE id = :p"), {"p": part_id}
    )
    order = {"id": order_id, "supplier_orders": [{"id": part_id, "lines": [{"id": line_id}]}]}
    await refund_after_completion(session, supply, order, 1)
    assert await supplier_balance(session, supply.id, Purpose.payable) == 0

    statement = await _statement(holding, session, holding_settings, supply)
    refund = {ln["kind"]: ln for ln in statement["lines"]}["refund"]
    assert (refund["sales_minor"], refund["commission_minor"]) == (-10_000, 0)
    assert (refund["platform_fee_minor"], refund["net_minor"]) == (-500, -9_500)
    assert refund["other_minor"] == statement["other_minor"] == 0
    assert statement["commission_minor"] == 1_000 - 1_000
    assert statement["net_minor"] == 0
