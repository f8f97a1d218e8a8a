"""The expiry and completion jobs: batches that queue the next run, and completed sales counted
per buyer order (once, however many suppliers it was split over) and taken back by an overrule."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import operator
from tests.orders.helpers import checkout, events, market, run_schedule
from tests.orders.test_fulfilment import (
    asked,
    deliver,
    line_for,
    operator_decides,
    paid_order,
    part_of,
    stock_of,
    supplier_decides,
)
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.models import Order, Shop
from xiaopu.orders import fulfilment, jobs, service

AFTER_WINDOW = timedelta(days=7, seconds=1)


async def shop_sales(session: AsyncSession, slug: str) -> tuple[int, str]:
    row = (
        await session.execute(select(Shop.completed_sales, Shop.level).where(Shop.slug == slug))
    ).one()
    return row[0], str(row[1])


async def queued(session: AsyncSession, job: str) -> int:
    """Remove and count the runs of a job queued in this test's transaction."""
    rows = await session.execute(
        text("DELETE FROM pgqueuer WHERE entrypoint = :e RETURNING id"), {"e": job}
    )
    return len(rows.all())


async def test_expiry_runs_again_while_batches_come_back_full(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    test_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "EXPIRY_BATCH", 2)
    m = await market(client, session, stock=20, products=2)
    a, b = m.suppliers[0].variants
    placed = [await checkout(client, m.slug, [(a, 1), (b, 2)]) for _ in range(5)]
    assert await stock_of(client, m.suppliers[0], 0) == 15
    assert await stock_of(client, m.suppliers[0], 1) == 10
    test_clock.advance(timedelta(minutes=settings.order_expiry_minutes, seconds=1))

    runs = 0
    while True:
        await run_schedule(session, settings, jobs.EXPIRE_JOB)
        runs += 1
        if not await queued(session, jobs.EXPIRE_JOB):
            break
    # Two full batches queue a third run, which expires the last order and queues none.
    assert runs == 3
    assert len(await events(session, "order.expired")) == 5
    ids = [o["id"] for o in placed]
    statuses = (await session.scalars(select(Order.status).where(Order.id.in_(ids)))).all()
    assert statuses == ["expired"] * 5
    assert await stock_of(client, m.suppliers[0], 0) == 20
    assert await stock_of(client, m.suppliers[0], 1) == 20


async def test_completion_runs_again_while_batches_come_back_full(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    test_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fulfilment, "COMPLETION_BATCH", 2)
    m = await market(client, session, stock=20)
    test_clock.freeze(test_clock.now())
    orders = [await paid_order(client, m.slug, [(m.variant, 1)]) for _ in range(3)]
    for order in orders:
        await deliver(client, m.suppliers[0], order["supplier_orders"][0]["id"])
    test_clock.advance(AFTER_WINDOW)

    await run_schedule(session, settings, jobs.COMPLETE_JOB)
    assert await queued(session, jobs.COMPLETE_JOB) == 1  # a full batch: it runs again
    await run_schedule(session, settings, jobs.COMPLETE_JOB)
    assert await queued(session, jobs.COMPLETE_JOB) == 0
    assert len(await events(session, "supplier_order.completed")) == 3
    assert await shop_sales(session, m.slug) == (3, "trial")


async def test_an_order_split_over_five_suppliers_counts_as_one_sale(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session, suppliers=5, stock=10)
    items = [(s.variants[0], 1) for s in m.suppliers]
    test_clock.freeze(test_clock.now())
    split = await paid_order(client, m.slug, items)
    assert len(split["supplier_orders"]) == 5
    single = await paid_order(client, m.slug, [(m.suppliers[0].variants[0], 2)])
    # Two of the five parts are delivered a day later: they complete at a later run.
    for s in m.suppliers[:3]:
        await deliver(client, s, part_of(split, s)["id"])
    await deliver(client, m.suppliers[0], part_of(single, m.suppliers[0])["id"])
    test_clock.advance(timedelta(days=1))
    for s in m.suppliers[3:]:
        await deliver(client, s, part_of(split, s)["id"])

    test_clock.advance(timedelta(days=6, seconds=1))
    await run_schedule(session, settings, jobs.COMPLETE_JOB)
    assert len(await events(session, "supplier_order.completed")) == 4
    assert await shop_sales(session, m.slug) == (2, "trial")

    test_clock.advance(timedelta(days=1))
    await run_schedule(session, settings, jobs.COMPLETE_JOB)
    completed = await events(session, "supplier_order.completed")
    assert len(completed) == 6  # one per supplier order
    assert {e["supplier_order_id"] for e in completed} == {
        p["id"] for o in (split, single) for p in o["supplier_orders"]
    }
    # Six supplier orders completed, all with units kept, of two buyer orders: two sales.
    assert await shop_sales(session, m.slug) == (2, "trial")


async def test_an_overrule_after_completion_takes_the_sale_back_without_demoting(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session, suppliers=2, stock=10)
    first, second = m.suppliers
    test_clock.freeze(test_clock.now())
    # whole: one supplier, both units asked back; split: two suppliers, one asked back whole.
    whole = await paid_order(client, m.slug, [(first.variants[0], 2)])
    split = await paid_order(client, m.slug, [(first.variants[0], 1), (second.variants[0], 1)])
    for order in (whole, split):
        for part in order["supplier_orders"]:
            supply = first if part["supplier_id"] == first.id else second
            await deliver(client, supply, part["id"])
    test_clock.advance(timedelta(days=1))
    whole_back = await asked(client, whole, line_for(whole, first.variants[0]), 2)
    split_back = await asked(client, split, line_for(split, first.variants[0]), 1)
    for return_id in (whole_back, split_back):
        assert (await supplier_decides(client, first, return_id, "reject")).status_code == 200
    # Three more sales make the shop standard at this run (5 by default).
    await session.execute(update(Shop).where(Shop.slug == m.slug).values(completed_sales=3))
    await session.flush()

    test_clock.advance(timedelta(days=6, seconds=1))
    await run_schedule(session, settings, jobs.COMPLETE_JOB)
    assert len(await events(session, "supplier_order.completed")) == 3
    assert await shop_sales(session, m.slug) == (5, "standard")

    op = await operator(client, session)  # earlier tokens have expired by now
    overruled = await operator_decides(client, op, split_back, "approve")
    assert overruled.status_code == 200, overruled.text
    assert overruled.json()["refund"]["amount_minor"] == part_of(split, first)["total_minor"]
    # The split order's other supplier order keeps its unit: it still counts.
    assert await shop_sales(session, m.slug) == (5, "standard")

    overruled = await operator_decides(client, op, whole_back, "approve")
    assert overruled.status_code == 200, overruled.text
    assert overruled.json()["refund"]["amount_minor"] == whole["total_minor"]
    # Nothing of the whole order is kept: it no longer counts, and the shop stays standard.
    assert await shop_sales(session, m.slug) == (4, "standard")
    counted = await session.scalar(select(Order.sale_counted_at).where(Order.id == whole["id"]))
    assert counted is None
