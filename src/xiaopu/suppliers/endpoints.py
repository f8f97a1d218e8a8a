"""Routes for supplier sign-up and profile, members, and operators' decisions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from xiaopu.auth.auth import CurrentOperator, CurrentPerson, SupplierOwner, SupplierReader
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import OptionalIdempotency
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.models import SupplierStatus
from xiaopu.suppliers import service
from xiaopu.suppliers.schemas import (
    Decision,
    MemberAdd,
    MemberOut,
    Membership,
    ShippingRate,
    SupplierCreate,
    SupplierOut,
)

router = APIRouter(prefix="/v1/suppliers", tags=["suppliers"])
operator_router = APIRouter(prefix="/v1/operator/suppliers", tags=["operator"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_supplier(
    body: SupplierCreate,
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    idempotency: OptionalIdempotency,
) -> SupplierOut:
    """Sign a supplier up (pending until an operator approves it), with the caller as owner.

    Send an Idempotency-Key to make retries safe: a retry returns the first answer."""
    return await idempotency.once(
        lambda: service.create(
            session, person.account_id, body, auto_approve=settings.supplier_auto_approve
        )
    )


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
    return await service.get(session, caller.supplier_id)


@router.put("/{supplier_id}/shipping")
async def set_shipping_rate(
    supplier_id: uuid.UUID, body: ShippingRate, caller: SupplierOwner, session: DbSession
) -> SupplierOut:
    """Set the flat shipping charge added to each of this supplier's orders."""
    return await service.set_shipping(session, caller.supplier_id, body)


@router.get("/{supplier_id}/members")
async def list_members(
    supplier_id: uuid.UUID, caller: SupplierReader, session: DbSession, page: Pagination
) -> Page[MemberOut]:
    return await service.list_members(session, caller.supplier_id, page)


@router.post("/{supplier_id}/members", status_code=status.HTTP_201_CREATED)
async def add_member(
    supplier_id: uuid.UUID, body: MemberAdd, caller: SupplierOwner, session: DbSession
) -> MemberOut:
    """Add an existing account as staff (or owner). Owners only."""
    return await service.add_member(session, caller.supplier_id, body)


@router.delete("/{supplier_id}/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(
    supplier_id: uuid.UUID, member_id: uuid.UUID, caller: SupplierOwner, session: DbSession
) -> Response:
    await service.remove_member(session, caller.supplier_id, member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@operator_router.get("")
async def list_suppliers(
    operator: CurrentOperator,
    session: DbSession,
    page: Pagination,
    status_filter: Annotated[SupplierStatus | None, Query(alias="status")] = None,
) -> Page[SupplierOut]:
    return await service.list_for_operator(session, status_filter, page)


@operator_router.post("/{supplier_id}/approve")
async def approve_supplier(
    supplier_id: uuid.UUID, operator: CurrentOperator, session: DbSession
) -> SupplierOut:
    return await service.decide(session, operator.account_id, supplier_id, "approve", None)


@operator_router.post("/{supplier_id}/reject")
async def reject_supplier(
    supplier_id: uuid.UUID, body: Decision, operator: CurrentOperator, session: DbSession
) -> SupplierOut:
    return await service.decide(session, operator.account_id, supplier_id, "reject", body)


@operator_router.post("/{supplier_id}/suspend")
async def suspend_supplier(
    supplier_id: uuid.UUID, body: Decision, operator: CurrentOperator, session: DbSession
) -> SupplierOut:
    """Suspend: the supplier's products leave the catalogue, shops and checkout at once."""
    return await service.decide(session, operator.account_id, supplier_id, "suspend", body)
