"""Queries for suppliers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import MemberRole, Supplier, SupplierMember


async def get(session: AsyncSession, supplier_id: uuid.UUID) -> Supplier | None:
    return await session.get(Supplier, supplier_id)


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
