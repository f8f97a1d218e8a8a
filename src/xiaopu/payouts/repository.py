"""Queries for withdrawals and payout batches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import Withdrawal, WithdrawalStatus


async def withdrawal(
    session: AsyncSession, shop_id: uuid.UUID, withdrawal_id: uuid.UUID, *, lock: bool = False
) -> Withdrawal | None:
    stmt = select(Withdrawal).where(Withdrawal.shop_id == shop_id, Withdrawal.id == withdrawal_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def page_of_withdrawals(
    session: AsyncSession, shop_id: uuid.UUID, page: PageParams
) -> Sequence[Withdrawal]:
    stmt = newest_first(
        select(Withdrawal).where(Withdrawal.shop_id == shop_id), Withdrawal.id, page
    )
    return (await session.scalars(stmt)).all()


async def paid_totals(session: AsyncSession, shop_id: uuid.UUID) -> dict[str, int]:
    stmt = (
        select(Withdrawal.currency, func.sum(Withdrawal.amount_minor))
        .where(Withdrawal.shop_id == shop_id, Withdrawal.status == WithdrawalStatus.paid)
        .group_by(Withdrawal.currency)
    )
    return {currency: int(total) for currency, total in (await session.execute(stmt)).all()}


async def waiting(session: AsyncSession, limit: int) -> Sequence[Withdrawal]:
    """Requested withdrawals, oldest first, skipping any another batch run holds."""
    stmt = (
        select(Withdrawal)
        .where(Withdrawal.status == WithdrawalStatus.requested)
        .order_by(Withdrawal.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(stmt)).all()
