"""Queries for commission lines and their history."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import OrderLine
from xiaopu.models.ledger import (
    PLATFORM_ID,
    Beneficiary,
    Commission,
    CommissionAction,
    CommissionEvent,
    PartStatus,
)


async def has_lines(session: AsyncSession, supplier_order_id: uuid.UUID) -> bool:
    stmt = select(exists().where(Commission.supplier_order_id == supplier_order_id))
    return bool(await session.scalar(stmt))


async def add(session: AsyncSession, rows: Sequence[Commission]) -> None:
    session.add_all(rows)
    await session.flush()


async def lock_supplier_order(session: AsyncSession, supplier_order_id: uuid.UUID) -> None:
    """Lock the supplier order's buyer order, then the supplier order: the order refunds,
    returns and the completion job's claim take them in, so a decision on the order's lines
    queues behind them, and they skip or wait for it, instead of deadlocking over the lines
    and the ledger accounts."""
    await session.execute(
        text(
            "SELECT 1 FROM orders WHERE id = (SELECT order_id FROM supplier_orders "
            "WHERE id = :id) FOR UPDATE"
        ),
        {"id": supplier_order_id},
    )
    await session.execute(
        text("SELECT 1 FROM supplier_orders WHERE id = :id FOR UPDATE"),
        {"id": supplier_order_id},
    )


async def of_supplier_order(
    session: AsyncSession, supplier_order_id: uuid.UUID, *, lock: bool = False
) -> Sequence[Commission]:
    stmt = (
        select(Commission)
        .where(Commission.supplier_order_id == supplier_order_id)
        .order_by(Commission.id)
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).all()


async def page_for_shop(
    session: AsyncSession,
    shop_id: uuid.UUID,
    status: PartStatus | None,
    since: datetime | None,
    until: datetime | None,
    page: PageParams,
) -> Sequence[Commission]:
    stmt = select(Commission).where(
        Commission.shop_id == shop_id, Commission.beneficiary == Beneficiary.shop
    )
    if status is not None:
        stmt = stmt.where(Commission.status == status)
    if since is not None:
        stmt = stmt.where(Commission.created_at >= since)
    if until is not None:
        stmt = stmt.where(Commission.created_at < until)
    return (await session.scalars(newest_first(stmt, Commission.id, page))).all()


async def history(
    session: AsyncSession, commission_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CommissionEvent]]:
    out: dict[uuid.UUID, list[CommissionEvent]] = defaultdict(list)
    if not commission_ids:
        return out
    stmt = (
        select(CommissionEvent)
        .where(CommissionEvent.commission_id.in_(commission_ids))
        .order_by(CommissionEvent.at, CommissionEvent.id)
    )
    for event in await session.scalars(stmt):
        out[event.commission_id].append(event)
    return out


async def supplier_movements(
    session: AsyncSession, supplier_id: uuid.UUID, since: datetime, until: datetime
) -> Sequence[tuple[CommissionEvent, Commission, str | None]]:
    """What moved a supplier's money on its order lines in [since, until), oldest first:
    accruals, reversals and refused holds (whose commission comes back to the supplier)."""
    stmt = (
        select(CommissionEvent, Commission, OrderLine.sku)
        .join(Commission, Commission.id == CommissionEvent.commission_id)
        .outerjoin(OrderLine, OrderLine.id == Commission.order_line_id)
        .where(
            Commission.supplier_id == supplier_id,
            CommissionEvent.action.in_(
                [CommissionAction.accrued, CommissionAction.reversed, CommissionAction.forfeited]
            ),
            CommissionEvent.at >= since,
            CommissionEvent.at < until,
        )
        .order_by(CommissionEvent.id)
    )
    return [(e, c, sku) for e, c, sku in (await session.execute(stmt)).all()]


async def page_held(session: AsyncSession, page: PageParams) -> Sequence[Commission]:
    stmt = select(Commission).where(Commission.status == PartStatus.held)
    return (await session.scalars(newest_first(stmt, Commission.id, page))).all()


async def release_pending(
    session: AsyncSession, supplier_order_ids: Sequence[uuid.UUID], now: datetime
) -> Sequence[Any]:
    """Make the pending parts of these supplier orders available and record that in their
    history, and move the money of their refused holds (forfeited before completion) on to the
    available stage, in one statement that keeps the rows in the database; returns what moved
    summed per (currency, beneficiary, owner): the legs of the completion postings.

    A refused hold's line stays forfeited: its `forfeited_to` moves on (once: the update is its
    own guard) with the money in the ledger, and its history says so (`forfeit_completed`, the
    supplier order's completion as cause), which is how a settlement finds that money in the
    supplier order's completion."""
    rows = await session.execute(
        text(
            """
            WITH moved AS (
                UPDATE commissions SET status = 'available', updated_at = :now
                WHERE supplier_order_id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'
                RETURNING id, supplier_order_id, beneficiary, shop_id, supplier_id, currency,
                    accrued_minor - reversed_minor AS remaining
            ), history AS (
                INSERT INTO commission_events (id, commission_id, action, status, amount_minor,
                    cause, at)
                SELECT gen_random_uuid(), id, :released, 'available', remaining,
                    'completion:' || supplier_order_id, :now
                FROM moved
            ), forfeits AS (
                UPDATE commissions SET updated_at = :now, forfeited_to =
                    CASE forfeited_to WHEN 'payable_pending' THEN 'payable' ELSE 'fees' END
                WHERE supplier_order_id = ANY(CAST(:ids AS uuid[])) AND status = 'forfeited'
                    AND forfeited_to IN ('payable_pending', 'fees_pending')
                RETURNING id, supplier_order_id,
                    CASE forfeited_to WHEN 'payable' THEN 'supplier' ELSE 'platform' END
                    AS beneficiary, supplier_id, currency, accrued_minor - reversed_minor
                    AS remaining
            ), forfeit_history AS (
                INSERT INTO commission_events (id, commission_id, action, status, amount_minor,
                    cause, at)
                SELECT gen_random_uuid(), id, :forfeit_completed, 'forfeited', remaining,
                    'completion:' || supplier_order_id, :now
                FROM forfeits
            )
            SELECT currency, beneficiary,
                CASE beneficiary WHEN 'shop' THEN shop_id WHEN 'supplier' THEN supplier_id
                    ELSE CAST(:platform AS uuid) END AS owner_id,
                sum(remaining)::bigint AS amount, count(*) AS lines
            FROM (
                SELECT currency, beneficiary, shop_id, supplier_id, remaining FROM moved
                UNION ALL
                SELECT currency, beneficiary, NULL, supplier_id, remaining FROM forfeits
            ) AS released
            GROUP BY 1, 2, 3
            """
        ),
        {
            "ids": list(supplier_order_ids),
            "now": now,
            "platform": PLATFORM_ID,
            "released": CommissionAction.released.value,
            "forfeit_completed": CommissionAction.forfeit_completed.value,
        },
    )
    return rows.all()


async def add_history_many(
    session: AsyncSession,
    rows: Sequence[tuple[uuid.UUID, CommissionAction, PartStatus, int, str]],
    at: datetime,
) -> None:
    """(commission, action, status, amount, cause) rows in one statement."""
    if not rows:
        return
    await session.execute(
        text(
            "INSERT INTO commission_events (id, commission_id, action, status, amount_minor, "
            "cause, at) SELECT *, CAST(:at AS timestamptz) FROM unnest(CAST(:ids AS uuid[]), "
            "CAST(:commissions AS uuid[]), CAST(:actions AS text[]), CAST(:statuses AS text[]), "
            "CAST(:amounts AS bigint[]), CAST(:causes AS text[]))"
        ),
        {
            "ids": [new_id() for _ in rows],
            "commissions": [r[0] for r in rows],
            "actions": [r[1].value for r in rows],
            "statuses": [r[2].value for r in rows],
            "amounts": [r[3] for r in rows],
            "causes": [r[4] for r in rows],
            "at": at,
        },
    )


async def paid_net(session: AsyncSession, shop_id: uuid.UUID, currency: str) -> int:
    stmt = select(
        func.coalesce(func.sum(Commission.accrued_minor - Commission.reversed_minor), 0)
    ).where(
        Commission.shop_id == shop_id,
        Commission.beneficiary == Beneficiary.shop,
        Commission.currency == currency,
        Commission.status == PartStatus.paid,
    )
    return int(await session.scalar(stmt) or 0)


async def oldest_available(
    session: AsyncSession, shop_id: uuid.UUID, currency: str, limit: int
) -> Sequence[Commission]:
    stmt = (
        select(Commission)
        .where(
            Commission.shop_id == shop_id,
            Commission.beneficiary == Beneficiary.shop,
            Commission.currency == currency,
            Commission.status == PartStatus.available,
        )
        .order_by(Commission.id)
        .limit(limit)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).all()
