"""Queries for commission lines and their history, supplier statements and their exports."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    DateTime,
    Integer,
    Select,
    String,
    TextClause,
    Uuid,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models.exports import ExportStatus, StatementExport, StatementExportChunk
from xiaopu.models.ledger import (
    PLATFORM_ID,
    Beneficiary,
    Commission,
    CommissionAction,
    CommissionEvent,
    PartKind,
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


# A supplier's statement lines for [since, until): one line per cause and order line (the
# shipping part has no line), its columns summed from the events that moved the supplier's
# money: accruals, reversals (negative) and refused holds. A refused hold's commission is the
# supplier's again: the refusal pays it back (the commission it gave up goes down as much) and
# a refund after it takes it from the supplier's payable like the rest of its share. The shop's
# markup is never the supplier's money, and a refusal of nothing moves nothing.
#
# The supplier's events of the period are one range of ix_commission_events_supplier_id
# (supplier, time), whatever the supplier's share of everyone's; each is joined to its line.
_MOVES = """
WITH moves AS (
    SELECT e.id AS event_id, e.at, e.cause, e.action, e.status AS event_status,
        CASE e.action WHEN 'reversed' THEN -e.amount_minor ELSE e.amount_minor END AS amount,
        c.beneficiary, c.kind, c.order_id, c.supplier_order_id, c.order_line_id, c.currency
    FROM commission_events e
    JOIN commissions c ON c.id = e.commission_id
    WHERE e.supplier_id = :supplier_id
        AND e.at >= :since AND e.at < :until
        AND e.action IN ('accrued', 'reversed', 'forfeited')
        AND (c.beneficiary, c.kind) IN (('supplier', 'supplier_share'),
            ('supplier', 'shipping'), ('shop', 'commission'), ('shop', 'boost'),
            ('platform', 'platform_fee'))
        AND NOT (e.action = 'forfeited' AND e.amount_minor = 0)
), lines AS (
    SELECT
        (array_agg(at ORDER BY event_id))[1] AS at,
        (array_agg(action ORDER BY event_id))[1] AS action,
        cause, supplier_order_id, order_line_id,
        (array_agg(order_id ORDER BY event_id))[1] AS order_id,
        (array_agg(currency ORDER BY event_id))[1] AS currency,
        -- A campaign's boost is commission the supplier pays on top: counted in.
        coalesce(sum(amount) FILTER (WHERE kind IN ('commission', 'boost')
            AND event_status <> 'forfeited'), 0)
            - coalesce(sum(amount) FILTER (WHERE kind IN ('commission', 'boost')
            AND event_status = 'forfeited' AND action = 'forfeited'), 0) AS commission_minor,
        coalesce(sum(amount) FILTER (WHERE kind = 'platform_fee'), 0) AS platform_fee_minor,
        coalesce(sum(amount) FILTER (WHERE kind = 'shipping'), 0) AS shipping_minor,
        coalesce(sum(amount) FILTER (WHERE kind = 'supplier_share'
            OR (kind IN ('commission', 'boost') AND event_status = 'forfeited')), 0)
            AS net_payable_minor
    FROM moves
    GROUP BY cause, supplier_order_id, order_line_id
), priced AS (
    SELECT lines.*,
        -- The base the supplier sold at: what it is owed plus what it gave up from the base;
        -- a shipping-only line sold nothing.
        CASE WHEN order_line_id IS NULL THEN 0
            ELSE net_payable_minor + commission_minor + platform_fee_minor END AS sales_minor,
        coalesce(order_line_id, CAST('00000000-0000-0000-0000-000000000000' AS uuid))
            AS line_key
    FROM lines
)
"""

_LINES = (
    _MOVES
    + """
SELECT p.at, CASE p.action WHEN 'accrued' THEN 'sale' WHEN 'reversed' THEN 'refund'
        ELSE 'forfeit' END AS kind,
    p.cause, p.order_id, p.supplier_order_id, p.order_line_id, ol.sku, p.currency,
    p.sales_minor, p.commission_minor, p.platform_fee_minor, p.shipping_minor,
    p.net_payable_minor, p.line_key
FROM priced p
LEFT JOIN order_lines ol ON ol.id = p.order_line_id
{after}
ORDER BY p.at, p.supplier_order_id, p.line_key, p.cause
LIMIT :limit
"""
)
_AFTER = (
    "WHERE (p.at, p.supplier_order_id, p.line_key, p.cause) "
    "> (:after_at, :after_supplier_order, :after_line, :after_cause)"
)

_TOTALS = (
    _MOVES
    + """
SELECT currency,
    coalesce(sum(sales_minor) FILTER (WHERE action = 'accrued'), 0) AS sales_minor,
    coalesce(-sum(sales_minor) FILTER (WHERE action = 'reversed'), 0) AS refunds_minor,
    sum(commission_minor) AS commission_minor,
    sum(platform_fee_minor) AS platform_fee_minor,
    sum(shipping_minor) AS shipping_minor,
    sum(net_payable_minor + shipping_minor) AS net_payable_minor,
    count(*) AS lines
FROM priced
GROUP BY currency
ORDER BY currency
"""
)

# How many of the period's events, up to :cap: a cheap bound on its lines (each line has at
# most three events), so that a period far too long is refused without summing it.
_EVENTS_UP_TO = """
SELECT count(*) FROM (
    SELECT 1 FROM commission_events e
    WHERE e.supplier_id = :supplier_id AND e.at >= :since AND e.at < :until
        AND e.action IN ('accrued', 'reversed', 'forfeited')
    LIMIT :cap
) AS bounded
"""

# Each statement line is made of at most this many events (supplier share, commission,
# platform fee of one order line and one cause).
EVENTS_PER_LINE = 3


@dataclass(frozen=True, slots=True)
class LineKey:
    """Where a page of statement lines ends: the next page starts after it."""

    at: datetime
    supplier_order_id: uuid.UUID
    line_key: uuid.UUID
    cause: str


def _period(supplier_id: uuid.UUID, since: datetime, until: datetime) -> list[BindParameter[Any]]:
    return [
        bindparam("supplier_id", supplier_id, type_=Uuid()),
        bindparam("since", since, type_=DateTime(timezone=True)),
        bindparam("until", until, type_=DateTime(timezone=True)),
    ]


def statement_lines_statement(
    supplier_id: uuid.UUID,
    since: datetime,
    until: datetime,
    after: LineKey | None,
    limit: int,
) -> TextClause:
    """A page of a supplier's statement lines in (at, supplier order, order line, cause)
    order, after `after`: computed in the database, no ORM objects."""
    params = [*_period(supplier_id, since, until), bindparam("limit", limit, type_=Integer())]
    if after is None:
        return text(_LINES.format(after="")).bindparams(*params)
    params += [
        bindparam("after_at", after.at, type_=DateTime(timezone=True)),
        bindparam("after_supplier_order", after.supplier_order_id, type_=Uuid()),
        bindparam("after_line", after.line_key, type_=Uuid()),
        bindparam("after_cause", after.cause, type_=String()),
    ]
    return text(_LINES.format(after=_AFTER)).bindparams(*params)


def statement_totals_statement(
    supplier_id: uuid.UUID, since: datetime, until: datetime
) -> TextClause:
    """Per currency, the period's totals and its number of lines, in one aggregate."""
    return text(_TOTALS).bindparams(*_period(supplier_id, since, until))


def statement_events_statement(
    supplier_id: uuid.UUID, since: datetime, until: datetime, cap: int
) -> TextClause:
    return text(_EVENTS_UP_TO).bindparams(
        *_period(supplier_id, since, until), bindparam("cap", cap, type_=Integer())
    )


async def statement_lines(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    since: datetime,
    until: datetime,
    after: LineKey | None,
    limit: int,
) -> Sequence[Any]:
    stmt = statement_lines_statement(supplier_id, since, until, after, limit)
    return (await session.execute(stmt)).all()


async def stream_statement_lines(
    session: AsyncSession, supplier_id: uuid.UUID, since: datetime, until: datetime, chunk: int
) -> AsyncIterator[Sequence[Any]]:
    """Every line of the period in order, `chunk` rows at a time from a server-side cursor: the
    period is summed once, and only a chunk is held at a time."""
    stmt = statement_lines_statement(supplier_id, since, until, None, 2**31 - 1)
    result = await session.stream(stmt.execution_options(yield_per=chunk))
    async for rows in result.partitions(chunk):
        yield rows


async def statement_totals(
    session: AsyncSession, supplier_id: uuid.UUID, since: datetime, until: datetime
) -> Sequence[Any]:
    return (await session.execute(statement_totals_statement(supplier_id, since, until))).all()


async def statement_events(
    session: AsyncSession, supplier_id: uuid.UUID, since: datetime, until: datetime, cap: int
) -> int:
    stmt = statement_events_statement(supplier_id, since, until, cap)
    return int(await session.scalar(stmt) or 0)


def held_statement(page: PageParams) -> Select[Commission]:
    """Held lines newest first, off the partial ix_commissions_held."""
    stmt = select(Commission).where(Commission.status == PartStatus.held)
    return newest_first(stmt, Commission.id, page)


async def page_held(session: AsyncSession, page: PageParams) -> Sequence[Commission]:
    return (await session.scalars(held_statement(page))).all()


async def release_pending(
    session: AsyncSession, supplier_order_ids: Sequence[uuid.UUID], now: datetime
) -> Sequence[Any]:
    """Make the pending parts of these supplier orders available and record that in their
    history, and move the money of their refused holds (forfeited before completion) on to the
    available stage, in one statement that keeps the rows in the database; returns what moved
    summed per (currency, beneficiary, owner): the legs of the completion postings (`part` is
    null), and after them the shop's share of each supplier order (`part` is its id, with its
    `order_id`; only those where the shop's lines moved), for the shop's events.

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
                RETURNING id, supplier_order_id, order_id, beneficiary, shop_id, supplier_id,
                    currency, accrued_minor - reversed_minor AS remaining
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
                sum(remaining)::bigint AS amount, count(*) AS lines,
                NULL::uuid AS part, NULL::uuid AS order_id
            FROM (
                SELECT currency, beneficiary, shop_id, supplier_id, remaining FROM moved
                UNION ALL
                SELECT currency, beneficiary, NULL, supplier_id, remaining FROM forfeits
            ) AS released
            GROUP BY 1, 2, 3
            UNION ALL
            SELECT currency, beneficiary, shop_id, sum(remaining)::bigint, count(*),
                supplier_order_id, order_id
            FROM moved WHERE beneficiary = 'shop'
            GROUP BY currency, beneficiary, shop_id, supplier_order_id, order_id
            ORDER BY part NULLS FIRST
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


def exports_of(supplier_id: uuid.UUID) -> Select[StatementExport]:
    """A supplier's statement exports: every read of one starts from here."""
    return select(StatementExport).where(StatementExport.supplier_id == supplier_id)


async def add_export(session: AsyncSession, export: StatementExport) -> None:
    session.add(export)
    await session.flush()


async def export_of(
    session: AsyncSession, supplier_id: uuid.UUID, export_id: uuid.UUID
) -> StatementExport | None:
    return await session.scalar(exports_of(supplier_id).where(StatementExport.id == export_id))


async def claim_export(session: AsyncSession, export_id: uuid.UUID) -> StatementExport | None:
    """Mark a queued (or, left by a dead worker, building) export as building and return it;
    None if it is finished or gone."""
    stmt = (
        update(StatementExport)
        .where(
            StatementExport.id == export_id,
            StatementExport.status.in_([ExportStatus.queued, ExportStatus.building]),
        )
        .values(status=ExportStatus.building, lines=0, size_bytes=0)
        .returning(StatementExport)
    )
    export = await session.scalar(stmt)
    if export is not None:
        # A building export taken over starts again from its first chunk.
        await session.execute(
            delete(StatementExportChunk).where(StatementExportChunk.export_id == export_id)
        )
    return export


async def add_export_chunk(
    session: AsyncSession, export_id: uuid.UUID, seq: int, data: bytes, lines: int
) -> None:
    await session.execute(
        insert(StatementExportChunk).values(export_id=export_id, seq=seq, data=data)
    )
    await session.execute(
        update(StatementExport)
        .where(StatementExport.id == export_id)
        .values(
            lines=StatementExport.lines + lines,
            size_bytes=StatementExport.size_bytes + len(data),
        )
    )


async def finish_export(
    session: AsyncSession,
    export_id: uuid.UUID,
    status: ExportStatus,
    at: datetime,
    *,
    expires_at: datetime | None = None,
) -> None:
    await session.execute(
        update(StatementExport)
        .where(StatementExport.id == export_id)
        .values(status=status, finished_at=at, expires_at=expires_at)
    )


async def pending_exports(session: AsyncSession, supplier_id: uuid.UUID) -> int:
    """How many of the supplier's exports are queued or building, counted under a lock on the
    supplier's exports (a transaction-scoped advisory lock), so that two requests at once
    cannot both pass the limit."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"exports:{supplier_id}", 0)))
    )
    stmt = (
        select(func.count())
        .select_from(StatementExport)
        .where(
            StatementExport.supplier_id == supplier_id,
            StatementExport.status.in_([ExportStatus.queued, ExportStatus.building]),
        )
    )
    return int(await session.scalar(stmt) or 0)


async def expire_exports(session: AsyncSession, now: datetime, batch: int = 1000) -> int:
    """Mark up to `batch` ready exports past their retention expired and delete their chunks;
    how many were expired (a full batch means more may wait)."""
    due = (
        select(StatementExport.id)
        .where(StatementExport.status == ExportStatus.ready, StatementExport.expires_at <= now)
        .order_by(StatementExport.expires_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    ids = list(
        (
            await session.scalars(
                update(StatementExport)
                .where(StatementExport.id.in_(due.scalar_subquery()))
                .values(status=ExportStatus.expired)
                .returning(StatementExport.id)
            )
        ).all()
    )
    if ids:
        await session.execute(
            delete(StatementExportChunk).where(StatementExportChunk.export_id.in_(ids))
        )
    return len(ids)


async def export_chunk(session: AsyncSession, export_id: uuid.UUID, seq: int) -> bytes | None:
    stmt = select(StatementExportChunk.data).where(
        StatementExportChunk.export_id == export_id, StatementExportChunk.seq == seq
    )
    return await session.scalar(stmt)


async def kept_fees(
    session: AsyncSession, supplier_order_ids: Sequence[uuid.UUID]
) -> Sequence[Any]:
    """The platform fee each order line of these supplier orders still holds (accrued less
    reversed: the fee of the units kept), in (supplier order, line) order: what an override is
    computed from."""
    if not supplier_order_ids:
        return []
    stmt = (
        select(
            Commission.supplier_order_id,
            Commission.order_line_id,
            Commission.order_id,
            Commission.shop_id,
            Commission.currency,
            (Commission.accrued_minor - Commission.reversed_minor).label("fee"),
        )
        .where(
            Commission.supplier_order_id.in_(sorted(set(supplier_order_ids))),
            Commission.beneficiary == Beneficiary.platform,
            Commission.kind == PartKind.platform_fee,
            Commission.order_line_id.is_not(None),
        )
        .order_by(Commission.supplier_order_id, Commission.order_line_id)
    )
    return (await session.execute(stmt)).all()
