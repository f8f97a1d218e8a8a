"""Routes for partner organisations: operators' (create, contract, suspend, move shops), members'
(staff, invite codes, the cohort, notices) and shops' (join by code, their notices)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from xiaopu.auth.auth import CurrentOperator, CurrentPerson
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import OptionalIdempotency, RequiredIdempotency
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.organisations import overrides, service
from xiaopu.organisations.auth import (
    ActiveOrganisationAdmin,
    OrganisationAdmin,
    OrganisationMember,
)
from xiaopu.organisations.schemas import (
    MONTH_PATTERN,
    CohortDays,
    CohortMoveIn,
    CohortMoveOut,
    CohortPage,
    ContractUpdate,
    InviteCodeCreate,
    InviteCodeOut,
    JoinIn,
    MyOrganisationOut,
    NoticeIn,
    NoticeOut,
    NoticeRecipientOut,
    OrganisationCreate,
    OrganisationMemberAdd,
    OrganisationMemberOut,
    OrganisationOut,
    OverrideOut,
    OverrideStatement,
    OverrideWallet,
    ShopCohortOut,
    ShopNoticeOut,
    StatusChange,
)
from xiaopu.payouts import service as payouts
from xiaopu.payouts.schemas import WithdrawalIn, WithdrawalOut

operator_router = APIRouter(prefix="/v1/operator", tags=["operator"])
router = APIRouter(prefix="/v1/organisations", tags=["organisations"])
shop_router = APIRouter(prefix="/v1/shops/mine", tags=["organisations"])

Since = Annotated[
    date | None,
    Query(description="First local day (platform time zone), inclusive; default 29 days back."),
]
Until = Annotated[date | None, Query(description="Last local day, inclusive; default today.")]
Month = Annotated[
    str, Query(pattern=MONTH_PATTERN, description="Local month (platform time zone), YYYY-MM.")
]
_SVG = {"schema": {"type": "string", "format": "binary"}}


# Operators ------------------------------------------------------------------------------------


@operator_router.post(
    "/organisations",
    status_code=status.HTTP_201_CREATED,
    operation_id="operator-create_organisation",
)
async def create_organisation(
    body: OrganisationCreate,
    operator: CurrentOperator,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> OrganisationOut:
    """An organisation, its contract and its first admin (an existing account, by id or login
    email; 404 `account_not_found`). Audited."""
    return await idempotency.once(lambda: service.create(session, operator.account_id, body))


@operator_router.get("/organisations", operation_id="operator-list_organisations")
async def list_organisations(
    operator: CurrentOperator, session: DbSession, page: Pagination
) -> Page[OrganisationOut]:
    return await service.list_all(session, page)


@operator_router.get("/organisations/{organisation_id}", operation_id="operator-get_organisation")
async def get_organisation(
    organisation_id: uuid.UUID, operator: CurrentOperator, session: DbSession
) -> OrganisationOut:
    return await service.get(session, organisation_id)


@operator_router.put(
    "/organisations/{organisation_id}/contract",
    operation_id="operator-update_organisation_contract",
)
async def update_organisation_contract(
    organisation_id: uuid.UUID,
    body: ContractUpdate,
    operator: CurrentOperator,
    session: DbSession,
) -> OrganisationOut:
    """New contract terms, for the cohort's sales that complete from now on. Audited."""
    return await service.update_contract(session, operator.account_id, organisation_id, body)


@operator_router.post(
    "/organisations/{organisation_id}/suspend", operation_id="operator-suspend_organisation"
)
async def suspend_organisation(
    organisation_id: uuid.UUID, body: StatusChange, operator: CurrentOperator, session: DbSession
) -> OrganisationOut:
    """Its codes stop working and its members can no longer issue codes or send notices; its
    cohort and members stay. Audited."""
    return await service.suspend(session, operator.account_id, organisation_id, body)


@operator_router.post(
    "/organisations/{organisation_id}/resume", operation_id="operator-resume_organisation"
)
async def resume_organisation(
    organisation_id: uuid.UUID, body: StatusChange, operator: CurrentOperator, session: DbSession
) -> OrganisationOut:
    """Audited."""
    return await service.resume(session, operator.account_id, organisation_id, body)


@operator_router.post("/shops/{shop_id}/organisation", operation_id="operator-move_shop")
async def move_shop(
    shop_id: uuid.UUID, body: CohortMoveIn, operator: CurrentOperator, session: DbSession
) -> CohortMoveOut:
    """Move a shop into an organisation's cohort or (null) out of any, with a reason: sales
    completed from now on count for its new cohort. Audited; 409 `cohort_unchanged` if it is
    there already."""
    return await service.move_shop(session, operator.account_id, shop_id, body)


# Members ----------------------------------------------------------------------------------------


@router.get("/mine", operation_id="organisations-list_my_organisations")
async def list_my_organisations(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[MyOrganisationOut]:
    """The organisations you are a member of, and your role in each."""
    return await service.my_organisations(session, person.account_id, page)


@router.get("/{organisation_id}", operation_id="organisations-get_organisation")
async def get_organisation_as_member(
    organisation_id: uuid.UUID, member: OrganisationMember, session: DbSession
) -> OrganisationOut:
    return await service.get_for_member(session, member.organisation_id)


@router.get("/{organisation_id}/members", operation_id="organisations-list_members")
async def list_members(
    organisation_id: uuid.UUID, member: OrganisationMember, session: DbSession, page: Pagination
) -> Page[OrganisationMemberOut]:
    return await service.list_members(session, member.organisation_id, page)


@router.post(
    "/{organisation_id}/members",
    status_code=status.HTTP_201_CREATED,
    operation_id="organisations-add_member",
)
async def add_member(
    organisation_id: uuid.UUID,
    body: OrganisationMemberAdd,
    admin: OrganisationAdmin,
    session: DbSession,
) -> OrganisationMemberOut:
    """Admins add staff (or admins) by account id or login email; 409 `already_member`."""
    return await service.add_member(session, admin.organisation_id, body)


@router.delete(
    "/{organisation_id}/members/{account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="organisations-remove_member",
)
async def remove_member(
    organisation_id: uuid.UUID, account_id: uuid.UUID, admin: OrganisationAdmin, session: DbSession
) -> Response:
    """409 `last_admin` for the organisation's only admin."""
    await service.remove_member(session, admin.organisation_id, account_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{organisation_id}/invite-codes",
    status_code=status.HTTP_201_CREATED,
    operation_id="organisations-create_invite_code",
)
async def create_invite_code(
    organisation_id: uuid.UUID,
    body: InviteCodeCreate,
    member: OrganisationMember,
    session: DbSession,
    settings: AppSettings,
    idempotency: OptionalIdempotency,
) -> InviteCodeOut:
    """A code people open a shop with (or a shop in no cohort joins with), with an optional
    label, expiry and use limit; shown with its share link and QR code."""
    return await idempotency.once(
        lambda: service.create_code(
            session, settings, member.organisation_id, member.account_id, body
        )
    )


@router.get("/{organisation_id}/invite-codes", operation_id="organisations-list_invite_codes")
async def list_invite_codes(
    organisation_id: uuid.UUID,
    member: OrganisationMember,
    session: DbSession,
    settings: AppSettings,
    page: Pagination,
) -> Page[InviteCodeOut]:
    return await service.list_codes(session, settings, member.organisation_id, page)


@router.get(
    "/{organisation_id}/invite-codes/{code_id}", operation_id="organisations-get_invite_code"
)
async def get_invite_code(
    organisation_id: uuid.UUID,
    code_id: uuid.UUID,
    member: OrganisationMember,
    session: DbSession,
    settings: AppSettings,
) -> InviteCodeOut:
    return await service.get_code(session, settings, member.organisation_id, code_id)


@router.post(
    "/{organisation_id}/invite-codes/{code_id}/revoke",
    operation_id="organisations-revoke_invite_code",
)
async def revoke_invite_code(
    organisation_id: uuid.UUID,
    code_id: uuid.UUID,
    member: OrganisationMember,
    session: DbSession,
    settings: AppSettings,
) -> InviteCodeOut:
    return await service.revoke_code(session, settings, member.organisation_id, code_id)


@router.get(
    "/{organisation_id}/invite-codes/{code_id}/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": _SVG}}},
    operation_id="organisations-get_invite_code_qr",
)
async def get_invite_code_qr(
    organisation_id: uuid.UUID,
    code_id: uuid.UUID,
    member: OrganisationMember,
    session: DbSession,
    settings: AppSettings,
) -> Response:
    """The code's share link as a QR code."""
    body = await service.qr_svg(session, settings, member.organisation_id, code_id)
    return Response(body, media_type="image/svg+xml", headers={"Cache-Control": "private"})


@router.get("/{organisation_id}/cohort", operation_id="organisations-list_cohort")
async def list_cohort(
    organisation_id: uuid.UUID,
    member: OrganisationMember,
    session: DbSession,
    settings: AppSettings,
    page: Pagination,
    since: Since = None,
    until: Until = None,
    inactive_days: Annotated[
        int | None,
        Query(ge=1, le=365, description="Only shops with no activity in this many local days."),
    ] = None,
) -> CohortPage:
    """The cohort's shops, newest first: activation (first product, share link and sale), last
    active day, and clicks, orders, GMV and earnings over the days asked for (at most 93)."""
    return await service.cohort(
        session,
        settings,
        member.organisation_id,
        page,
        since=since,
        until=until,
        inactive_days=inactive_days,
    )


@router.get("/{organisation_id}/cohort/days", operation_id="organisations-cohort_days")
async def cohort_days(
    organisation_id: uuid.UUID,
    member: OrganisationMember,
    session: DbSession,
    settings: AppSettings,
    since: Since = None,
    until: Until = None,
) -> CohortDays:
    """The cohort's totals per local day (at most 93), over the shops in it now."""
    return await service.cohort_days(
        session, settings, member.organisation_id, since=since, until=until
    )


@router.get("/{organisation_id}/overrides", operation_id="organisations-list_overrides")
async def list_overrides(
    organisation_id: uuid.UUID,
    member: OrganisationMember,
    session: DbSession,
    page: Pagination,
    month: Month,
) -> Page[OverrideOut]:
    """The override lines of a local month, newest first: one per completed cohort order line
    in the contract's currency, with its fee, rate, accrual, reversals and status."""
    return await overrides.list_overrides(session, member.organisation_id, month, page)


@router.get("/{organisation_id}/statement", operation_id="organisations-statement")
async def statement(
    organisation_id: uuid.UUID, member: OrganisationMember, session: DbSession, month: Month
) -> OverrideStatement:
    """A local month's override totals per currency (accrued, reversed, clawed back, released,
    returned) and, once closed, the activity rule's outcome."""
    return await overrides.statement(session, member.organisation_id, month)


@router.get("/{organisation_id}/wallet", operation_id="organisations-wallet")
async def wallet(
    organisation_id: uuid.UUID, member: OrganisationMember, session: DbSession
) -> OverrideWallet:
    """The organisation's override balances per currency from the ledger: pending, available,
    being withdrawn; and paid out."""
    return await overrides.wallet(session, member.organisation_id)


@router.post(
    "/{organisation_id}/withdrawals",
    status_code=status.HTTP_201_CREATED,
    operation_id="organisations-request_withdrawal",
)
async def request_withdrawal(
    organisation_id: uuid.UUID,
    body: WithdrawalIn,
    admin: ActiveOrganisationAdmin,
    session: DbSession,
    settings: AppSettings,
    idempotency: RequiredIdempotency,
) -> WithdrawalOut:
    """Admins only. Withdraw available override income, paid by the same payout runs as shops'
    withdrawals: at least the payout threshold (422 `below_payout_threshold`), at most what is
    available (409 `insufficient_funds`), not while a clawback has left the balance negative
    (409 `negative_balance`), and not while the organisation is suspended (409
    `organisation_suspended`)."""
    return await idempotency.once(
        lambda: payouts.request_organisation_withdrawal(
            session, settings, admin.organisation_id, body
        )
    )


@router.get("/{organisation_id}/withdrawals", operation_id="organisations-list_withdrawals")
async def list_withdrawals(
    organisation_id: uuid.UUID, member: OrganisationMember, session: DbSession, page: Pagination
) -> Page[WithdrawalOut]:
    """The organisation's withdrawals, newest first (staff may read them)."""
    return await payouts.list_organisation_withdrawals(session, member.organisation_id, page)


@router.post(
    "/{organisation_id}/withdrawals/{withdrawal_id}/retry",
    operation_id="organisations-retry_withdrawal",
)
async def retry_withdrawal(
    organisation_id: uuid.UUID,
    withdrawal_id: uuid.UUID,
    admin: ActiveOrganisationAdmin,
    session: DbSession,
    settings: AppSettings,
    idempotency: RequiredIdempotency,
) -> WithdrawalOut:
    """Admins only. Ask again for a withdrawal whose payout failed (its funds went back to
    available); 409 `withdrawal_not_retryable` otherwise."""
    return await idempotency.once(
        lambda: payouts.retry_organisation_withdrawal(
            session, settings, admin.organisation_id, withdrawal_id
        )
    )


@router.post(
    "/{organisation_id}/notices",
    status_code=status.HTTP_201_CREATED,
    operation_id="organisations-send_notice",
)
async def send_notice(
    organisation_id: uuid.UUID,
    body: NoticeIn,
    member: OrganisationMember,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> NoticeOut:
    """A task or notice to every shop in the cohort now; the event `organisation.notice` tells
    the app, which tells the shops."""
    return await idempotency.once(
        lambda: service.send_notice(session, member.organisation_id, member.account_id, body)
    )


@router.get("/{organisation_id}/notices", operation_id="organisations-list_notices")
async def list_notices(
    organisation_id: uuid.UUID, member: OrganisationMember, session: DbSession, page: Pagination
) -> Page[NoticeOut]:
    return await service.list_notices(session, member.organisation_id, page)


@router.get("/{organisation_id}/notices/{notice_id}", operation_id="organisations-get_notice")
async def get_notice(
    organisation_id: uuid.UUID, notice_id: uuid.UUID, member: OrganisationMember, session: DbSession
) -> NoticeOut:
    """The notice, how many it went to and how many have read it."""
    return await service.get_notice(session, member.organisation_id, notice_id)


@router.get(
    "/{organisation_id}/notices/{notice_id}/recipients",
    operation_id="organisations-list_notice_recipients",
)
async def list_notice_recipients(
    organisation_id: uuid.UUID,
    notice_id: uuid.UUID,
    member: OrganisationMember,
    session: DbSession,
    page: Pagination,
    read: Annotated[
        bool | None, Query(description="true: those who have read it; false: those who have not.")
    ] = None,
) -> Page[NoticeRecipientOut]:
    return await service.list_recipients(session, member.organisation_id, notice_id, read, page)


# Shops ------------------------------------------------------------------------------------------


@shop_router.post("/organisation", operation_id="organisations-join_cohort")
async def join_cohort(body: JoinIn, person: CurrentPerson, session: DbSession) -> ShopCohortOut:
    """Your shop joins the cohort of the code's organisation: once, and only from no cohort
    (409 `shop_in_cohort`, `cohort_already_joined`); 404 `invite_code_not_found`, 409
    `invite_code_expired`, `invite_code_revoked`, `invite_code_used_up`."""
    return await service.join(session, person.account_id, body)


@shop_router.get("/organisation", operation_id="organisations-get_my_cohort")
async def get_my_cohort(person: CurrentPerson, session: DbSession) -> ShopCohortOut:
    """The organisation whose cohort your shop is in (404 `not_in_cohort`)."""
    return await service.shop_cohort(session, person.account_id)


@shop_router.get("/notices", operation_id="organisations-list_my_notices")
async def list_my_notices(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[ShopNoticeOut]:
    """Tasks and notices your shop's organisation sent it, newest first."""
    return await service.shop_notices(session, person.account_id, page)


@shop_router.post("/notices/{notice_id}/read", operation_id="organisations-read_notice")
async def read_notice(
    notice_id: uuid.UUID, person: CurrentPerson, session: DbSession
) -> ShopNoticeOut:
    return await service.read_notice(session, person.account_id, notice_id)
