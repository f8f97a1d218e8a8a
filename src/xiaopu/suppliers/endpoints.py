"""Routes for supplier sign-up and profile."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from xiaopu.auth.auth import CurrentPerson, SupplierReader
from xiaopu.db import DbSession
from xiaopu.idempotency.service import OptionalIdempotency
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.suppliers import service
from xiaopu.suppliers.schemas import Membership, SupplierCreate, SupplierOut

router = APIRouter(prefix="/v1/suppliers", tags=["suppliers"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_supplier(
    body: SupplierCreate,
    person: CurrentPerson,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> SupplierOut:
    """Sign a supplier up (pending until approved), with the caller as its owner.

    Send an Idempotency-Key to make retries safe: a retry returns the first answer."""
    return await idempotency.once(lambda: service.create(session, person.account_id, body))


@router.get("")
async def list_my_suppliers(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[Membership]:
    """The suppliers the caller is a member of, with the caller's role in each."""
    return await service.memberships(session, person.account_id, page)


@router.get("/{supplier_id}")
async def get_supplier(
    supplier_id: uuid.UUID, caller: SupplierReader, session: DbSession
) -> SupplierOut:
    return SupplierOut.model_validate(await service.get(session, caller.supplier_id))
