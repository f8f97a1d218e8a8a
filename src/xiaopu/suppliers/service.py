"""Supplier sign-up, members, and operators' approval, rejection and suspension."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.audit import service as audit
from xiaopu.auth import service as auth
from xiaopu.errors import Conflict, NotFound, SupplierNotFound
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.models import Account, AuditAction, MemberRole, Supplier, SupplierMember, SupplierStatus
from xiaopu.suppliers import repository
from xiaopu.suppliers.schemas import (
    Decision,
    MemberAdd,
    MemberOut,
    Membership,
    ShippingRate,
    SupplierCreate,
    SupplierOut,
)


class MemberNotFound(NotFound):
    code = "member_not_found"
    title = "Member not found"


class AccountNotFound(NotFound):
    code = "account_not_found"
    title = "No account has this email or phone number"


class AlreadyMember(Conflict):
    code = "already_member"
    title = "This account is already a member of the supplier"


class LastOwner(Conflict):
    code = "last_owner"
    title = "A supplier must keep at least one owner"


class InvalidSupplierTransition(Conflict):
    code = "invalid_supplier_transition"
    title = "The supplier's status does not allow this"


def supplier_out(supplier: Supplier) -> SupplierOut:
    out = SupplierOut.model_validate(supplier)
    if supplier.payout_account_number:
        out.payout_account_hint = supplier.payout_account_number[-4:]
    return out


async def create(
    session: AsyncSession, owner_account_id: uuid.UUID, data: SupplierCreate, *, auto_approve: bool
) -> SupplierOut:
    supplier = Supplier(
        name=data.name,
        status=SupplierStatus.active if auto_approve else SupplierStatus.pending,
        contact_name=data.contact_name,
        contact_email=data.contact_email,
        contact_phone=data.contact_phone,
    )
    if data.payout is not None:
        supplier.payout_method = data.payout.method
        supplier.payout_account_name = data.payout.account_name
        supplier.payout_account_number = data.payout.account_number
    session.add(supplier)
    await session.flush()
    session.add(
        SupplierMember(supplier_id=supplier.id, account_id=owner_account_id, role=MemberRole.owner)
    )
    await session.flush()
    return supplier_out(supplier)


async def set_shipping(
    session: AsyncSession, supplier_id: uuid.UUID, data: ShippingRate
) -> SupplierOut:
    supplier = await _get(session, supplier_id)
    supplier.shipping_fee_minor = data.amount_minor
    supplier.shipping_currency = data.currency
    await session.flush()
    return supplier_out(supplier)


async def _get(
    session: AsyncSession, supplier_id: uuid.UUID, *, for_update: bool = False
) -> Supplier:
    supplier = await repository.get(session, supplier_id, for_update=for_update)
    if supplier is None:
        raise SupplierNotFound()
    return supplier


async def get(session: AsyncSession, supplier_id: uuid.UUID) -> SupplierOut:
    return supplier_out(await _get(session, supplier_id))


async def memberships(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[Membership]:
    rows = await repository.memberships(session, account_id, page)
    items, cursor = id_page(rows, page, lambda row: row[0].id)
    return Page[Membership](
        items=[Membership(supplier=supplier_out(s), role=role) for s, role in items],
        next_cursor=cursor,
    )


def _member_out(member: SupplierMember, account: Account, *, contact: bool = True) -> MemberOut:
    return MemberOut(
        id=member.id,
        account_id=account.id,
        role=member.role,
        email=account.email if contact else None,
        phone=account.phone if contact else None,
        display_name=account.display_name,
        created_at=member.created_at,
    )


async def list_members(
    session: AsyncSession, supplier_id: uuid.UUID, viewer: MemberRole | None, page: PageParams
) -> Page[MemberOut]:
    """The supplier's members; their email and phone only for an owner (`viewer` is the
    caller's role, None for an API key)."""
    contact = viewer is MemberRole.owner
    rows = await repository.members(session, supplier_id, page)
    items, cursor = id_page(rows, page, lambda row: row[0].id)
    return Page[MemberOut](
        items=[_member_out(m, a, contact=contact) for m, a in items], next_cursor=cursor
    )


async def add_member(session: AsyncSession, supplier_id: uuid.UUID, data: MemberAdd) -> MemberOut:
    account = await auth.account_by_login(session, data.login)
    if account is None:
        raise AccountNotFound()
    member = SupplierMember(supplier_id=supplier_id, account_id=account.id, role=data.role)
    try:
        async with session.begin_nested():
            session.add(member)
    except IntegrityError as exc:
        raise AlreadyMember() from exc
    return _member_out(member, account)


async def remove_member(
    session: AsyncSession, supplier_id: uuid.UUID, member_id: uuid.UUID
) -> None:
    await _get(session, supplier_id, for_update=True)  # serialises owner removals
    member = await repository.member(session, supplier_id, member_id)
    if member is None:
        raise MemberNotFound()
    if member.role is MemberRole.owner and await repository.owner_count(session, supplier_id) <= 1:
        raise LastOwner()
    await session.delete(member)
    await session.flush()


# Operators ------------------------------------------------------------------------------------

_ALLOWED = {
    "approve": {SupplierStatus.pending, SupplierStatus.rejected, SupplierStatus.suspended},
    "reject": {SupplierStatus.pending},
    "suspend": {SupplierStatus.active},
}


async def list_for_operator(
    session: AsyncSession, status: SupplierStatus | None, page: PageParams
) -> Page[SupplierOut]:
    rows = await repository.by_status(session, status, page)
    items, cursor = id_page(rows, page, lambda s: s.id)
    return Page[SupplierOut](items=[supplier_out(s) for s in items], next_cursor=cursor)


_AUDITED = {
    "approve": AuditAction.supplier_approve,
    "reject": AuditAction.supplier_reject,
    "suspend": AuditAction.supplier_suspend,
}


async def decide(
    session: AsyncSession,
    operator_id: uuid.UUID,
    supplier_id: uuid.UUID,
    action: str,
    decision: Decision | None,
) -> SupplierOut:
    """approve, reject (with a reason) or suspend (with a reason). Suspension takes the
    supplier's products off sale at once: every catalogue and shop query filters on status."""
    supplier = await _get(session, supplier_id, for_update=True)
    if supplier.status not in _ALLOWED[action]:
        raise InvalidSupplierTransition(
            f"Cannot {action} a supplier that is {supplier.status}.",
            extra={"current_status": str(supplier.status)},
        )
    before = {"status": supplier.status, "status_reason": supplier.status_reason}
    supplier.status = {
        "approve": SupplierStatus.active,
        "reject": SupplierStatus.rejected,
        "suspend": SupplierStatus.suspended,
    }[action]
    supplier.status_reason = decision.reason if decision else None
    await session.flush()
    await audit.record(
        session,
        operator_id,
        _AUDITED[action],
        "supplier",
        supplier.id,
        reason=supplier.status_reason,
        before=before,
        after={"status": supplier.status, "status_reason": supplier.status_reason},
    )
    return supplier_out(supplier)
