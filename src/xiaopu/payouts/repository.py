"""Queries for withdrawals, their payout claims, and payout batches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import PayoutBatch, Withdrawal, WithdrawalStatus
from xiaopu.payouts.providers import Payee, PayeeKind


def _of(payee: Payee) -> ColumnElement[bool]:
    """Withdrawals paying `payee` (a shop or an organisation)."""
    if payee.kind is PayeeKind.shop:
        return Withdrawal.shop_id == payee.id
    if payee.kind is PayeeKind.organisation:
        return Withdrawal.organisation_id == payee.id
    raise ValueError(f"withdrawals pay no {payee.kind}")


async def withdrawal(
    session: AsyncSession, payee: Payee, withdrawal_id: uuid.UUID, *, lock: bool = False
) -> Withdrawal | None:
    stmt = select(Withdrawal).where(_of(payee), Withdrawal.id == withdrawal_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def page_of_withdrawals(
    session: AsyncSession, payee: Payee, page: PageParams
) -> Sequence[Withdrawal]:
    stmt = newest_first(select(Withdrawal).where(_of(payee)), Withdrawal.id, page)
    return (await session.scalars(stmt)).all()


async def paid_totals(session: AsyncSession, payee: Payee) -> dict[str, int]:
    stmt = (
        select(Withdrawal.currency, func.sum(Withdrawal.amount_minor))
        .where(_of(payee), Withdrawal.status == WithdrawalStatus.paid)
        .group_by(Withdrawal.currency)
    )
    return {currency: int(total) for currency, total in (await session.execute(stmt)).all()}


async def waiting(session: AsyncSession, limit: int) -> Sequence[Withdrawal]:
    """Requested withdrawals, oldest first, skipping any another run is claiming."""
    stmt = (
        select(Withdrawal)
        .where(Withdrawal.status == WithdrawalStatus.requested)
        .order_by(Withdrawal.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(stmt)).all()


async def abandoned(
    session: AsyncSession, claimed_before: datetime, after: uuid.UUID | None, limit: int
) -> Sequence[Withdrawal]:
    """Claims made at or before `claimed_before` and never recorded, in id order after `after`,
    skipping any another run is taking over or recording."""
    stmt = (
        select(Withdrawal)
        .where(
            Withdrawal.status == WithdrawalStatus.processing,
            Withdrawal.claimed_at <= claimed_before,
        )
        .order_by(Withdrawal.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if after is not None:
        stmt = stmt.where(Withdrawal.id > after)
    return (await session.scalars(stmt)).all()


async def claimed(session: AsyncSession, withdrawal_id: uuid.UUID) -> Withdrawal | None:
    stmt = (
        select(Withdrawal)
        .where(Withdrawal.id == withdrawal_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def lock_payee(session: AsyncSession, payee: Payee, currency: str) -> None:
    """Take a payee's payout lock for one currency until the transaction ends. Only payout
    records take it, each before any other lock, so it queues them without deadlocks. (A
    shop's key names the shop alone, as it always has; an organisation's says what it is.)"""
    who = str(payee.id) if payee.kind is PayeeKind.shop else f"{payee.kind}:{payee.id}"
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"payout:{who}:{currency}"},
    )


async def count_outcome(session: AsyncSession, batch_id: uuid.UUID, *, paid: bool) -> None:
    """Count one recorded payout on its batch; the last one completes it."""
    counter = PayoutBatch.paid_count if paid else PayoutBatch.failed_count
    settled = PayoutBatch.paid_count + PayoutBatch.failed_count + 1
    await session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.id == batch_id)
        .values(
            {
                counter: counter + 1,
                PayoutBatch.completed_at: case(
                    (settled >= PayoutBatch.item_count, utcnow()),
                    else_=PayoutBatch.completed_at,
                ),
            }
        )
    )


async def batches(session: AsyncSession, ids: Sequence[uuid.UUID]) -> Sequence[PayoutBatch]:
    stmt = (
        select(PayoutBatch)
        .where(PayoutBatch.id.in_(ids))
        .order_by(PayoutBatch.id)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).all()


async def queue_totals(session: AsyncSession) -> list[tuple[str, WithdrawalStatus, int, int]]:
    """(currency, status, count, total) of withdrawals waiting for or in a payout."""
    stmt = (
        select(
            Withdrawal.currency,
            Withdrawal.status,
            func.count(),
            func.sum(Withdrawal.amount_minor),
        )
        .where(Withdrawal.status.in_([WithdrawalStatus.requested, WithdrawalStatus.processing]))
        .group_by(Withdrawal.currency, Withdrawal.status)
        .order_by(Withdrawal.currency, Withdrawal.status)
    )
    return [(c, s, int(n), int(t)) for c, s, n, t in (await session.execute(stmt)).all()]
