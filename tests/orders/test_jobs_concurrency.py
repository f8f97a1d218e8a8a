"""Two workers running the expiry or the completion job at once, committing for real: every
order expires once and its stock comes back once; every supplier order completes once, its
commissions are released once, and each buyer order counts as one sale."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from tests.orders.conftest import Live
from tests.orders.helpers import ADDRESS, checkout, events, market
from tests.orders.test_fulfilment import deliver, paid_order, part_of
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.models import Order, Shop, SupplierOrder, Variant
from xiaopu.orders import fulfilment, service

pytestmark = pytest.mark.concurrent
WORKERS = 3


def _guest(i: int) -> dict[str, str]:
    return {**ADDRESS, "phone": f"1390013{i:04d}"}


async def _drain(live: Live, run: str) -> list[int]:
    """Run one job's batches until one finds nothing, in its own transactions; returns how many
    rows each batch took."""
    taken = []
    while True:
        async with live.sessionmaker() as session, session.begin():
            if run == "expire":
                n = await service.expire_due(session)
            else:
                n = await fulfilment.complete_due(session, live.settings)
        if not n:
            return taken
        taken.append(n)


async def test_workers_expiring_at_once_give_stock_back_exactly_once(
    live: Live, test_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "EXPIRY_BATCH", 3)
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=200, products=3)
    variants = m.suppliers[0].variants
    orders = []
    for i in range(40):
        items = [(v, 1 + (i + n) % 3) for n, v in enumerate(variants) if (i + n) % 4]
        orders.append(await checkout(live.client, m.slug, items, address=_guest(i)))
    reserved = Counter[str]()
    for order in orders:
        for part in order["supplier_orders"]:
            for line in part["lines"]:
                reserved[line["variant_id"]] += line["quantity"]
    async with live.sessionmaker() as session:
        rows = await session.execute(
            select(Variant.id, Variant.stock).where(Variant.id.in_(variants))
        )
        before = {str(v): stock for v, stock in rows}
    assert all(before[v] == 200 - reserved[v] for v in variants)

    test_clock.advance(timedelta(minutes=live.settings.order_expiry_minutes, seconds=1))
    runs = await asyncio.gather(*(_drain(live, "expire") for _ in range(WORKERS)))

    assert sum(sum(r) for r in runs) == 40  # each order expired by exactly one batch
    async with live.sessionmaker() as session:
        rows = await session.execute(
            select(Variant.id, Variant.stock).where(Variant.id.in_(variants))
        )
        after = {str(v): stock for v, stock in rows}
        expired = await events(session, "order.expired")
        statuses = Counter((await session.scalars(select(Order.status))).all())
        part_statuses = Counter((await session.scalars(select(SupplierOrder.status))).all())
    assert after == {v: before[v] + reserved[v] for v in variants}
    assert after == dict.fromkeys(variants, 200)
    assert sorted(e["order_id"] for e in expired) == sorted(o["id"] for o in orders)
    assert statuses == {"expired": 40}
    assert part_statuses == {"expired": 40}


async def test_workers_completing_at_once_release_and_count_once(
    live: Live, test_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fulfilment, "COMPLETION_BATCH", 2)
    async with live.sessionmaker() as session:
        m = await market(live.client, session, suppliers=3, stock=50)
    test_clock.freeze(test_clock.now())
    orders = [
        await paid_order(live.client, m.slug, [(s.variants[0], 1) for s in m.suppliers])
        for _ in range(8)
    ]
    for order in orders:
        for s in m.suppliers:
            await deliver(live.client, s, part_of(order, s)["id"])
    test_clock.advance(timedelta(days=7, seconds=1))

    runs = await asyncio.gather(*(_drain(live, "complete") for _ in range(WORKERS)))

    assert sum(sum(r) for r in runs) == 24
    async with live.sessionmaker() as session:
        completed = await events(session, "supplier_order.completed")
        sales = await session.scalar(select(Shop.completed_sales).where(Shop.slug == m.slug))
        released = await session.scalar(
            text("SELECT count(*) FROM commission_events WHERE action = 'released'")
        )
        lines = await session.scalar(text("SELECT count(*) FROM commissions"))
        pending = await session.scalar(
            text("SELECT count(*) FROM commissions WHERE status = 'pending'")
        )
        counted = await session.scalar(
            select(func.count()).select_from(Order).where(Order.sale_counted_at.isnot(None))
        )
        problems = await ledger.reconcile(session)
    assert sorted(e["supplier_order_id"] for e in completed) == sorted(
        p["id"] for o in orders for p in o["supplier_orders"]
    )
    assert (released, pending) == (lines, 0)
    assert (sales, counted) == (8, 8)
    assert problems == 0
