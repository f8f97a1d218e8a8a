"""Queries for suppliers and their members."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import Account, MemberRole, Supplier, SupplierMember, SupplierStatus


async def get(
    session: AsyncSession, supplier_id: uuid.UUID, *, for_update: bool = False
) -> Supplier | None:
    return await session.get(Supplier, supplier_id, with_for_update=for_update)


async def memberships(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Sequence[tuple[Supplier, MemberRole]]:
    stmt = (
        select(Supplier, SupplierMember.role)
        .join(SupplierMember, SupplierMember.supplier_id == Supplier.id)
        .where(SupplierMember.account_id == account_id)
    )
    rows = await session.execute(newest_first(stmt, Supplier.id, page))
    return [(supplier, role) for supplier, role in rows.all()]


async def by_status(
    session: AsyncSession, status: SupplierStatus | None, page: PageParams
) -> Sequence[Supplier]:
    stmt = select(Supplier)
    if status is not None:
        stmt = stmt.where(Supplier.status == status)
    return (await session.scalars(newest_first(stmt, Supplier.id, page))).all()


async def members(
    session: AsyncSession, supplier_id: uuid.UUID, page: PageParams
) -> Sequence[tuple[SupplierMember, Account]]:
    stmt = (
        select(SupplierMember, Account)
        .join(Account, Account.id == SupplierMember.account_id)
        .where(SupplierMember.supplier_id == supplier_id)
    )
    rows = await session.execute(newest_first(stmt, SupplierMember.id, page))
    return [(member, account) for member, account in rows.all()]


async def member(
    session: AsyncSession, supplier_id: uuid.UUID, member_id: uuid.UUID
) -> SupplierMember | None:
    return await session.scalar(
        select(SupplierMember).where(
            SupplierMember.supplier_id == supplier_id, SupplierMember.id == member_id
        )
    )


async def owner_count(session: AsyncSession, supplier_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).where(
            SupplierMember.supplier_id == supplier_id, SupplierMember.role == MemberRole.owner
        )
    )
    return int(count or 0)
