"""Queries for settlements, their lines, supplier payouts, and the movements they settle."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import Commission, Refund, SupplierOrder
from xiaopu.models.settlements import (
    Settlement,
    SettlementClose,
    SettlementLine,
    SupplierPayout,
    SupplierPayoutStatus,
)

# Ledger kinds whose movements of `payable` are not lines of their own: completions are
# explained per supplier order instead, and settlements are the closes themselves.
COMPLETION_KIND = "completion"
SETTLEMENT_KIND = "settlement"


@dataclass(frozen=True, slots=True)
class Completion:
    supplier_order_id: uuid.UUID
    order_id: uuid.UUID
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class Posting:
    """One ledger transaction's net movement of a supplier's `payable` (debit positive)."""

    cause: str
    kind: str
    at: datetime
    amount_minor: int


@dataclass(frozen=True, slots=True)
class PartEvent:
    commission_id: uuid.UUID
    action: str
    status: str
    cause: str
    amount_minor: int


async def lock_supplier(session: AsyncSession, supplier_id: uuid.UUID) -> None:
    """Serialise closes of one supplier until the transaction ends (its statement numbers are
    gap-free across currencies). Nothing else takes this lock, so it cannot deadlock."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"settlement:{supplier_id}"},
    )


async def candidate_suppliers(session: AsyncSession, end: datetime) -> list[uuid.UUID]:
    """Suppliers with a movement of `payable` before `end` that no settlement holds yet."""
    rows = await session.execute(
        text(
            "SELECT so.supplier_id FROM supplier_orders so "
            "WHERE so.status = 'completed' AND so.completed_at < :end AND NOT EXISTS "
            "(SELECT 1 FROM settlement_lines l WHERE l.source = 'completion:' || so.id) "
            "UNION "
            "SELECT a.owner_id FROM ledger_accounts a "
            "JOIN ledger_entries e ON e.account_id = a.id "
            "JOIN ledger_transactions t ON t.id = e.transaction_id "
            "WHERE a.owner_kind = 'supplier' AND a.purpose = 'payable' "
            "AND t.kind NOT IN (:completion, :settlement) AND t.created_at < :end "
            "AND NOT EXISTS (SELECT 1 FROM settlement_lines l WHERE l.source = t.cause) "
            "ORDER BY 1"
        ),
        {"end": end, "completion": COMPLETION_KIND, "settlement": SETTLEMENT_KIND},
    )
    return [r[0] for r in rows]


async def payable_currencies(session: AsyncSession, supplier_id: uuid.UUID) -> list[str]:
    rows = await session.execute(
        text(
            "SELECT currency FROM ledger_accounts WHERE owner_kind = 'supplier' "
            "AND owner_id = :supplier AND purpose = 'payable' ORDER BY currency"
        ),
        {"supplier": supplier_id},
    )
    return [str(r[0]) for r in rows]


async def unsettled_completions(
    session: AsyncSession, supplier_id: uuid.UUID, currency: str
) -> list[Completion]:
    rows = await session.execute(
        text(
            "SELECT so.id, so.order_id, so.completed_at FROM supplier_orders so "
            "WHERE so.supplier_id = :supplier AND so.currency = :currency "
            "AND so.status = 'completed' AND NOT EXISTS "
            "(SELECT 1 FROM settlement_lines l WHERE l.source = 'completion:' || so.id) "
            "ORDER BY so.completed_at, so.id"
        ),
        {"supplier": supplier_id, "currency": currency},
    )
    return [Completion(r.id, r.order_id, r.completed_at) for r in rows]


async def unsettled_postings(
    session: AsyncSession, supplier_id: uuid.UUID, currency: str
) -> list[Posting]:
    """Movements of the supplier's `payable` other than completions and closes (refunds after
    completion, decisions on held earnings, ...) that no settlement holds yet."""
    rows = await session.execute(
        text(
            "SELECT t.cause, t.kind, t.created_at, sum(e.amount_minor) AS amount "
            "FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id "
            "JOIN ledger_transactions t ON t.id = e.transaction_id "
            "WHERE a.owner_kind = 'supplier' AND a.owner_id = :supplier "
            "AND a.purpose = 'payable' AND a.currency = :currency "
            "AND t.kind NOT IN (:completion, :settlement) "
            "AND NOT EXISTS (SELECT 1 FROM settlement_lines l WHERE l.source = t.cause) "
            "GROUP BY t.cause, t.kind, t.created_at ORDER BY t.created_at, t.cause"
        ),
        {
            "supplier": supplier_id,
            "currency": currency,
            "completion": COMPLETION_KIND,
            "settlement": SETTLEMENT_KIND,
        },
    )
    return [Posting(r.cause, r.kind, r.created_at, int(r.amount)) for r in rows]


async def parts_of(
    session: AsyncSession, supplier_order_ids: Sequence[uuid.UUID]
) -> Sequence[Commission]:
    if not supplier_order_ids:
        return []
    stmt = select(Commission).where(Commission.supplier_order_id.in_(supplier_order_ids))
    return (await session.scalars(stmt)).all()


async def part_events(
    session: AsyncSession, commission_ids: Sequence[uuid.UUID]
) -> list[PartEvent]:
    """Reversals and releases of these commission lines (with the line's status then), and the
    money of refused holds that completion moved on."""
    if not commission_ids:
        return []
    rows = await session.execute(
        text(
            "SELECT commission_id, action, status, cause, amount_minor FROM commission_events "
            "WHERE commission_id = ANY(CAST(:ids AS uuid[])) "
            "AND action IN ('reversed', 'released', 'forfeit_completed')"
        ),
        {"ids": list(commission_ids)},
    )
    return [PartEvent(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]


async def refund_parts(
    session: AsyncSession, refund_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID | None, uuid.UUID]]:
    """refund -> (its supplier order, its order)."""
    if not refund_ids:
        return {}
    stmt = select(Refund.id, Refund.supplier_order_id, Refund.order_id).where(
        Refund.id.in_(refund_ids)
    )
    return {r.id: (r.supplier_order_id, r.order_id) for r in await session.execute(stmt)}


async def orders_of(
    session: AsyncSession, supplier_id: uuid.UUID, supplier_order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """supplier order -> order, for those of this supplier."""
    if not supplier_order_ids:
        return {}
    stmt = select(SupplierOrder.id, SupplierOrder.order_id).where(
        SupplierOrder.id.in_(supplier_order_ids), SupplierOrder.supplier_id == supplier_id
    )
    return {r.id: r.order_id for r in await session.execute(stmt)}


async def latest(session: AsyncSession, supplier_id: uuid.UUID, currency: str) -> Settlement | None:
    stmt = (
        select(Settlement)
        .where(Settlement.supplier_id == supplier_id, Settlement.currency == currency)
        .order_by(Settlement.number.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).one_or_none()


async def last_number(session: AsyncSession, supplier_id: uuid.UUID) -> int:
    stmt = select(func.coalesce(func.max(Settlement.number), 0)).where(
        Settlement.supplier_id == supplier_id
    )
    return int(await session.scalar(stmt) or 0)


async def add(session: AsyncSession, settlement: Settlement, lines: list[SettlementLine]) -> None:
    session.add(settlement)
    await session.flush()
    session.add_all(lines)
    await session.flush()


async def closed(session: AsyncSession, period: str, start: datetime) -> bool:
    stmt = select(SettlementClose.period).where(
        SettlementClose.period == period, SettlementClose.period_start == start
    )
    return (await session.scalar(stmt)) is not None


async def record_close(
    session: AsyncSession, period: str, start: datetime, settlements: int, at: datetime
) -> None:
    await session.execute(
        pg_insert(SettlementClose)
        .values(period=period, period_start=start, settlements=settlements, closed_at=at)
        .on_conflict_do_nothing()
    )


# Reading -------------------------------------------------------------------------------------


async def page_of_settlements(
    session: AsyncSession, supplier_id: uuid.UUID, page: PageParams
) -> Sequence[Settlement]:
    stmt = select(Settlement).where(Settlement.supplier_id == supplier_id)
    return (await session.scalars(newest_first(stmt, Settlement.id, page))).all()


async def settlement(
    session: AsyncSession, supplier_id: uuid.UUID, settlement_id: uuid.UUID
) -> Settlement | None:
    stmt = select(Settlement).where(
        Settlement.supplier_id == supplier_id, Settlement.id == settlement_id
    )
    return (await session.scalars(stmt)).one_or_none()


def lines_statement(
    settlement_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Select[SettlementLine]:
    """A page of a settlement's lines in order of time, read off (settlement_id, at, id): a
    keyset page, as lines are immutable once settled."""
    stmt = select(SettlementLine).where(SettlementLine.settlement_id == settlement_id)
    if after is not None:
        stmt = stmt.where(tuple_(SettlementLine.at, SettlementLine.id) > tuple_(*after))
    return stmt.order_by(SettlementLine.at, SettlementLine.id).limit(limit)


async def lines_of(
    session: AsyncSession,
    settlement_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[SettlementLine]:
    return (await session.scalars(lines_statement(settlement_id, after, limit))).all()


async def payouts_of(
    session: AsyncSession, settlement_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SupplierPayout]:
    if not settlement_ids:
        return {}
    stmt = select(SupplierPayout).where(SupplierPayout.settlement_id.in_(settlement_ids))
    return {p.settlement_id: p for p in await session.scalars(stmt)}


async def payout(
    session: AsyncSession,
    payout_id: uuid.UUID,
    *,
    supplier_id: uuid.UUID | None = None,
    lock: bool = False,
) -> SupplierPayout | None:
    stmt = select(SupplierPayout).where(SupplierPayout.id == payout_id)
    if supplier_id is not None:
        stmt = stmt.where(SupplierPayout.supplier_id == supplier_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def paid_totals(session: AsyncSession, supplier_id: uuid.UUID) -> dict[str, int]:
    stmt = (
        select(SupplierPayout.currency, func.sum(SupplierPayout.amount_minor))
        .where(
            SupplierPayout.supplier_id == supplier_id,
            SupplierPayout.status == SupplierPayoutStatus.paid,
        )
        .group_by(SupplierPayout.currency)
    )
    return {currency: int(total) for currency, total in (await session.execute(stmt)).all()}


async def claimable(
    session: AsyncSession, stale_before: datetime, limit: int
) -> Sequence[SupplierPayout]:
    """Payouts waiting to be sent, and those a run claimed before `stale_before` and never
    recorded (its worker died), oldest first, skipping any another run holds."""
    stmt = (
        select(SupplierPayout)
        .where(
            (SupplierPayout.status == SupplierPayoutStatus.pending)
            | (
                (SupplierPayout.status == SupplierPayoutStatus.processing)
                & (SupplierPayout.claimed_at < stale_before)
            )
        )
        .order_by(SupplierPayout.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(stmt)).all()
