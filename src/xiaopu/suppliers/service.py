"""Supplier sign-up and lookup."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.errors import SupplierNotFound
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.models import MemberRole, Supplier, SupplierMember, SupplierStatus
from xiaopu.suppliers import repository
from xiaopu.suppliers.schemas import Membership, SupplierCreate, SupplierOut


async def create(
    session: AsyncSession, owner_account_id: uuid.UUID, data: SupplierCreate
) -> SupplierOut:
    supplier = Supplier(name=data.name, status=SupplierStatus.pending)
    session.add(supplier)
    await session.flush()
    session.add(
        SupplierMember(supplier_id=supplier.id, account_id=owner_account_id, role=MemberRole.owner)
    )
    await session.flush()
    return SupplierOut.model_validate(supplier)


async def get(session: AsyncSession, supplier_id: uuid.UUID) -> Supplier:
    supplier = await repository.get(session, supplier_id)
    if supplier is None:
        raise SupplierNotFound()
    return supplier


async def memberships(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[Membership]:
    rows = await repository.memberships(session, account_id, page)
    items, cursor = id_page(rows, page, lambda row: row[0].id)
    return Page[Membership](
        items=[
            Membership(supplier=SupplierOut.model_validate(supplier), role=role)
            for supplier, role in items
        ],
        next_cursor=cursor,
    )
