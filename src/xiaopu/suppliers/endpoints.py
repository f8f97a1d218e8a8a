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


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="suppliers-create_supplier")
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


@router.get("", operation_id="suppliers-list_my_suppliers")
async def list_my_suppliers(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[Membership]:
    """The suppliers the caller is a member of, with the caller's role in each."""
    return await service.memberships(session, person.account_id, page)


@router.get("/{supplier_id}", operation_id="suppliers-get_supplier")
async def get_supplier(
    supplier_id: uuid.UUID, caller: SupplierReader, session: DbSession
) -> SupplierOut:
    return await service.get(session, caller.supplier_id)


@router.put("/{supplier_id}/shipping", operation_id="suppliers-set_shipping_rate")
async def set_shipping_rate(
    supplier_id: uuid.UUID, body: ShippingRate, caller: SupplierOwner, session: DbSession
) -> SupplierOut:
    """Set the flat shipping charge added to each of this supplier's orders."""
    return await service.set_shipping(session, caller.supplier_id, body)


@router.get("/{supplier_id}/members", operation_id="suppliers-list_members")
async def list_members(
    supplier_id: uuid.UUID, caller: SupplierReader, session: DbSession, page: Pagination
) -> Page[MemberOut]:
    """The supplier's members. Only its owners see their email and phone."""
    return await service.list_members(session, caller.supplier_id, caller.role, page)


@router.post(
    "/{supplier_id}/members",
    status_code=status.HTTP_201_CREATED,
    operation_id="suppliers-add_member",
)
async def add_member(
    supplier_id: uuid.UUID, body: MemberAdd, caller: SupplierOwner, session: DbSession
) -> MemberOut:
    """Add an existing account as staff (or owner). Owners only."""
    return await service.add_member(session, caller.supplier_id, body)


@router.delete(
    "/{supplier_id}/members/{member_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="suppliers-remove_member",
)
async def remove_member(
    supplier_id: uuid.UUID, member_id: uuid.UUID, caller: SupplierOwner, session: DbSession
) -> Response:
    await service.remove_member(session, caller.supplier_id, member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@operator_router.get("", operation_id="operator-list_suppliers")
async def list_suppliers(
    operator: CurrentOperator,
    session: DbSession,
    page: Pagination,
    status_filter: Annotated[SupplierStatus | None, Query(alias="status")] = None,
) -> Page[SupplierOut]:
    return await service.list_for_operator(session, status_filter, page)


@operator_router.post("/{supplier_id}/approve", operation_id="operator-approve_supplier")
async def approve_supplier(
    supplier_id: uuid.UUID, operator: CurrentOperator, session: DbSession
) -> SupplierOut:
    return await service.decide(session, operator.account_id, supplier_id, "approve", None)


@operator_router.post("/{supplier_id}/reject", operation_id="operator-reject_supplier")
async def reject_supplier(
    supplier_id: uuid.UUID, body: Decision, operator: CurrentOperator, session: DbSession
) -> SupplierOut:
    return await service.decide(session, operator.account_id, supplier_id, "reject", body)


@operator_router.post("/{supplier_id}/suspend", operation_id="operator-suspend_supplier")
async def suspend_supplier(
    supplier_id: uuid.UUID, body: Decision, operator: CurrentOperator, session: DbSession
) -> SupplierOut:
    """Suspend: the supplier's products leave the catalogue, shops and checkout at once."""
    return await service.decide(session, operator.account_id, supplier_id, "suspend", body)
