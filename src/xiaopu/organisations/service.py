"""Partner organisations (生态机构, 城市合伙人): operators create them and move shops between their
cohorts (audited); members add staff, issue invite codes, coach their cohort from its figures and
send it notices; a shop joins a cohort once, by code, when it opens or later.

A shop's cohort is `shops.organisation_id`; every change of it is a CohortMove (the override of
a sale follows the cohort the shop is in when the sale completes). A code's uses are counted by
one conditional UPDATE, so a use limit holds however many redeem at once. The cohort's figures
come from the daily rollups (shop_daily, shop_daily_traffic) and a few index seeks per shop on a
page, in local days of the platform's time zone; no buyer's data is read.
"""

from __future__ import annotations

import io
import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import segno
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.audit import service as audit
from xiaopu.auth import service as auth
from xiaopu.config import Settings
from xiaopu.errors import AppError, Conflict, Forbidden, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.models import (
    Account,
    AuditAction,
    CohortMove,
    InviteCode,
    Notice,
    Organisation,
    OrganisationMember,
    OrganisationRole,
    OrganisationStatus,
    Shop,
)
from xiaopu.organisations import repository
from xiaopu.organisations.schemas import (
    Activation,
    CohortDay,
    CohortDays,
    CohortMoney,
    CohortMoveIn,
    CohortMoveOut,
    CohortPage,
    CohortShop,
    ContractOut,
    ContractUpdate,
    InviteCodeCreate,
    InviteCodeOut,
    InviteCodeState,
    JoinIn,
    MyOrganisationOut,
    NoticeIn,
    NoticeOut,
    NoticeRecipientOut,
    OrganisationCreate,
    OrganisationMemberAdd,
    OrganisationMemberOut,
    OrganisationOut,
    PersonRef,
    ShopCohortOut,
    ShopNoticeOut,
    StatusChange,
)
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

MAX_DAYS = 93
DEFAULT_DAYS = 30
# Unambiguous when read aloud or off a poster: no 0/O, 1/I/L. 31 symbols, 10 of them: ~50 bits.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
JOIN_PATH = "/m/j/"


class OrganisationNotFound(NotFound):
    code = "organisation_not_found"
    title = "Organisation not found"


class OrganisationSuspended(Conflict):
    code = "organisation_suspended"
    title = "The organisation is suspended"


class OrganisationAlreadySuspended(Conflict):
    code = "organisation_already_suspended"
    title = "The organisation is already suspended"


class OrganisationAlreadyActive(Conflict):
    code = "organisation_already_active"
    title = "The organisation is already active"


class OrganisationAdminOnly(Forbidden):
    code = "organisation_admin_only"
    title = "Only the organisation's admins may do this"


class PersonNotFound(NotFound):
    code = "account_not_found"
    title = "No account has this id or login"


class AlreadyMember(Conflict):
    code = "already_member"
    title = "This person is already a member of the organisation"


class MemberNotFound(NotFound):
    code = "member_not_found"
    title = "This person is not a member of the organisation"


class LastAdmin(Conflict):
    code = "last_admin"
    title = "The organisation's last admin cannot be removed"


class InviteCodeNotFound(NotFound):
    code = "invite_code_not_found"
    title = "No invite code is this"


class InviteCodeExpired(Conflict):
    code = "invite_code_expired"
    title = "The invite code has expired"


class InviteCodeRevoked(Conflict):
    code = "invite_code_revoked"
    title = "The invite code was revoked"


class InviteCodeUsedUp(Conflict):
    code = "invite_code_used_up"
    title = "The invite code has been used as many times as it may be"


class ExpiryInPast(AppError):
    status = 422
    code = "expiry_in_past"
    title = "The code would have expired already"


class NoShop(NotFound):
    code = "shop_not_found"
    title = "Shop not found"


class ShopInCohort(Conflict):
    code = "shop_in_cohort"
    title = "The shop is already in an organisation's cohort"


class CohortAlreadyJoined(Conflict):
    code = "cohort_already_joined"
    title = "The shop has been in a cohort before: only an operator can move it now"


class NotInCohort(NotFound):
    code = "not_in_cohort"
    title = "The shop is in no organisation's cohort"


class CohortUnchanged(Conflict):
    code = "cohort_unchanged"
    title = "The shop is in that cohort already"


class NoticeNotFound(NotFound):
    code = "notice_not_found"
    title = "Notice not found"


class InvalidRange(AppError):
    status = 422
    code = "invalid_date_range"
    title = f"The range must end on or after its first day and span at most {MAX_DAYS} days"


# Organisations, as operators run them --------------------------------------------------------


def _contract(org: Organisation) -> dict[str, Any]:
    return {
        "override_bps": org.override_bps,
        "currency": org.currency,
        "monthly_cap_minor": org.monthly_cap_minor,
        "min_active_shops": org.min_active_shops,
    }


def _state(org: Organisation) -> dict[str, Any]:
    return {"name": org.name, "kind": org.kind, "status": org.status, **_contract(org)}


def _out(org: Organisation, cohort_shops: int) -> OrganisationOut:
    return OrganisationOut(
        id=org.id,
        name=org.name,
        kind=org.kind,
        status=org.status,
        contract=ContractOut(**_contract(org)),
        cohort_shops=cohort_shops,
        created_at=org.created_at,
        updated_at=org.updated_at,
    )


async def _out_of(session: AsyncSession, org: Organisation) -> OrganisationOut:
    sizes = await repository.cohort_sizes(session, [org.id])
    return _out(org, sizes.get(org.id, 0))


async def _organisation(
    session: AsyncSession, organisation_id: uuid.UUID, *, for_update: bool = False
) -> Organisation:
    org = await repository.get(session, organisation_id, for_update=for_update)
    if org is None:
        raise OrganisationNotFound()
    return org


async def _person(session: AsyncSession, ref: PersonRef) -> Account:
    if ref.account_id is not None:
        found = await repository.account(session, ref.account_id)
    else:
        found = await auth.account_by_login(session, ref.email or "")
    if found is None:
        raise PersonNotFound()
    return found


async def create(
    session: AsyncSession, operator_id: uuid.UUID, data: OrganisationCreate
) -> OrganisationOut:
    """The organisation, its contract and its first admin (an existing account)."""
    admin = await _person(session, data.admin)
    org = Organisation(
        name=data.name.strip(),
        kind=data.kind,
        status=OrganisationStatus.active,
        **data.contract.model_dump(),
    )
    session.add(org)
    await session.flush()
    session.add(
        OrganisationMember(organisation_id=org.id, account_id=admin.id, role=OrganisationRole.admin)
    )
    await session.flush()
    await audit.record(
        session,
        operator_id,
        AuditAction.organisation_create,
        "organisation",
        org.id,
        after={**_state(org), "admin_account_id": str(admin.id)},
    )
    return _out(org, 0)


async def list_all(session: AsyncSession, page: PageParams) -> Page[OrganisationOut]:
    rows = await repository.page(session, page)
    items, cursor = id_page(rows, page, lambda o: o.id)
    sizes = await repository.cohort_sizes(session, [o.id for o in items])
    return Page[OrganisationOut](
        items=[_out(o, sizes.get(o.id, 0)) for o in items], next_cursor=cursor
    )


async def get(session: AsyncSession, organisation_id: uuid.UUID) -> OrganisationOut:
    return await _out_of(session, await _organisation(session, organisation_id))


async def update_contract(
    session: AsyncSession, operator_id: uuid.UUID, organisation_id: uuid.UUID, data: ContractUpdate
) -> OrganisationOut:
    """New terms, for the cohort's sales that complete from now on."""
    org = await _organisation(session, organisation_id, for_update=True)
    before = _contract(org)
    for name, value in data.model_dump(exclude={"reason"}).items():
        setattr(org, name, value)
    await session.flush()
    await audit.record(
        session,
        operator_id,
        AuditAction.organisation_update_contract,
        "organisation",
        org.id,
        reason=data.reason,
        before=before,
        after=_contract(org),
    )
    return await _out_of(session, org)


async def suspend(
    session: AsyncSession, operator_id: uuid.UUID, organisation_id: uuid.UUID, data: StatusChange
) -> OrganisationOut:
    """Its codes stop working and its members can no longer issue codes or send notices; its
    cohort stays as it is."""
    org = await _organisation(session, organisation_id, for_update=True)
    if org.status is OrganisationStatus.suspended:
        raise OrganisationAlreadySuspended()
    return await _set_status(session, operator_id, org, OrganisationStatus.suspended, data.reason)


async def resume(
    session: AsyncSession, operator_id: uuid.UUID, organisation_id: uuid.UUID, data: StatusChange
) -> OrganisationOut:
    org = await _organisation(session, organisation_id, for_update=True)
    if org.status is OrganisationStatus.active:
        raise OrganisationAlreadyActive()
    return await _set_status(session, operator_id, org, OrganisationStatus.active, data.reason)


async def _set_status(
    session: AsyncSession,
    operator_id: uuid.UUID,
    org: Organisation,
    status: OrganisationStatus,
    reason: str,
) -> OrganisationOut:
    before = {"status": org.status}
    org.status = status
    await session.flush()
    action = (
        AuditAction.organisation_suspend
        if status is OrganisationStatus.suspended
        else AuditAction.organisation_resume
    )
    await audit.record(
        session,
        operator_id,
        action,
        "organisation",
        org.id,
        reason=reason,
        before=before,
        after={"status": org.status},
    )
    return await _out_of(session, org)


def _move_out(move: CohortMove) -> CohortMoveOut:
    return CohortMoveOut(
        id=move.id,
        shop_id=move.shop_id,
        from_organisation_id=move.from_organisation_id,
        to_organisation_id=move.to_organisation_id,
        reason=move.reason,
        at=move.at,
    )


async def move_shop(
    session: AsyncSession, operator_id: uuid.UUID, shop_id: uuid.UUID, data: CohortMoveIn
) -> CohortMoveOut:
    """Move a shop into another cohort, or out of any: its sales completed from now on count
    for the new cohort (or none)."""
    shop = await repository.shop(session, shop_id, for_update=True)
    if shop is None:
        raise NoShop()
    if data.organisation_id is not None:
        target = await _organisation(session, data.organisation_id)
        if target.status is not OrganisationStatus.active:
            raise OrganisationSuspended("A shop cannot be moved into a suspended organisation.")
    if shop.organisation_id == data.organisation_id:
        raise CohortUnchanged()
    now = utcnow()
    move = _enter(session, shop, data.organisation_id, now, operator_id=operator_id)
    move.reason = data.reason
    await session.flush()
    await audit.record(
        session,
        operator_id,
        AuditAction.shop_move_cohort,
        "shop",
        shop.id,
        reason=data.reason,
        before={"organisation_id": move.from_organisation_id},
        after={"organisation_id": move.to_organisation_id},
    )
    return _move_out(move)


def _enter(
    session: AsyncSession,
    shop: Shop,
    organisation_id: uuid.UUID | None,
    at: Any,
    *,
    operator_id: uuid.UUID | None = None,
    code_id: uuid.UUID | None = None,
) -> CohortMove:
    move = CohortMove(
        shop_id=shop.id,
        from_organisation_id=shop.organisation_id,
        to_organisation_id=organisation_id,
        invite_code_id=code_id,
        operator_id=operator_id,
        at=at,
    )
    shop.organisation_id = organisation_id
    shop.cohort_joined_at = None if organisation_id is None else at
    repository.add_move(session, move)
    return move


# Members ---------------------------------------------------------------------------------------


async def member_role(
    session: AsyncSession, organisation_id: uuid.UUID, account_id: uuid.UUID
) -> OrganisationRole | None:
    return await repository.role(session, organisation_id, account_id)


async def my_organisations(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[MyOrganisationOut]:
    rows = await repository.memberships(session, account_id, page.after_id(), page.limit)
    items, cursor = id_page(rows, page, lambda row: row[0].id)
    return Page[MyOrganisationOut](
        items=[
            MyOrganisationOut(id=o.id, name=o.name, kind=o.kind, status=o.status, role=role)
            for o, role in items
        ],
        next_cursor=cursor,
    )


def _member_out(member: OrganisationMember, account: Account) -> OrganisationMemberOut:
    return OrganisationMemberOut(
        account_id=account.id,
        display_name=account.display_name,
        email=account.email,
        role=member.role,
        created_at=member.created_at,
    )


async def list_members(
    session: AsyncSession, organisation_id: uuid.UUID, page: PageParams
) -> Page[OrganisationMemberOut]:
    rows = await repository.members_page(session, organisation_id, page.after_id(), page.limit)
    items, cursor = id_page(rows, page, lambda row: row[0].account_id)
    return Page[OrganisationMemberOut](
        items=[_member_out(m, a) for m, a in items], next_cursor=cursor
    )


async def add_member(
    session: AsyncSession, organisation_id: uuid.UUID, data: OrganisationMemberAdd
) -> OrganisationMemberOut:
    account = await _person(session, data)
    member = OrganisationMember(
        organisation_id=organisation_id, account_id=account.id, role=data.role
    )
    try:
        async with session.begin_nested():
            session.add(member)
    except IntegrityError as exc:
        raise AlreadyMember() from exc
    return _member_out(member, account)


async def remove_member(
    session: AsyncSession, organisation_id: uuid.UUID, account_id: uuid.UUID
) -> None:
    # The organisation's row orders removals, so two admins cannot remove each other at once.
    await _organisation(session, organisation_id, for_update=True)
    member = await repository.member(session, organisation_id, account_id)
    if member is None:
        raise MemberNotFound()
    if (
        member.role is OrganisationRole.admin
        and await repository.admins(session, organisation_id) <= 1
    ):
        raise LastAdmin()
    await session.delete(member)
    await session.flush()


async def get_for_member(session: AsyncSession, organisation_id: uuid.UUID) -> OrganisationOut:
    return await get(session, organisation_id)


# Invite codes -----------------------------------------------------------------------------------


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def share_url(settings: Settings, code: str) -> str:
    return f"{settings.public_base_url}{JOIN_PATH}{code}"


def _code_state(code: InviteCode) -> InviteCodeState:
    if code.revoked_at is not None:
        return InviteCodeState.revoked
    if code.max_uses is not None and code.uses >= code.max_uses:
        return InviteCodeState.used_up
    if code.expires_at is not None and code.expires_at <= utcnow():
        return InviteCodeState.expired
    return InviteCodeState.active


def _code_out(settings: Settings, code: InviteCode) -> InviteCodeOut:
    qr = (
        f"{settings.public_base_url}/v1/organisations/{code.organisation_id}"
        f"/invite-codes/{code.id}/qr.svg"
    )
    return InviteCodeOut(
        id=code.id,
        code=code.code,
        label=code.label,
        expires_at=code.expires_at,
        max_uses=code.max_uses,
        uses=code.uses,
        revoked_at=code.revoked_at,
        state=_code_state(code),
        share_url=share_url(settings, code.code),
        qr_svg_url=qr,
        created_at=code.created_at,
    )


async def require_active(session: AsyncSession, organisation_id: uuid.UUID) -> None:
    """409 `organisation_suspended` unless the organisation is active."""
    await _active(session, organisation_id)


async def _active(session: AsyncSession, organisation_id: uuid.UUID) -> Organisation:
    org = await _organisation(session, organisation_id)
    if org.status is not OrganisationStatus.active:
        raise OrganisationSuspended()
    return org


async def create_code(
    session: AsyncSession,
    settings: Settings,
    organisation_id: uuid.UUID,
    account_id: uuid.UUID,
    data: InviteCodeCreate,
) -> InviteCodeOut:
    await _active(session, organisation_id)
    if data.expires_at is not None and data.expires_at <= utcnow():
        raise ExpiryInPast()
    for _ in range(5):
        code = InviteCode(
            organisation_id=organisation_id,
            code=_new_code(),
            label=data.label,
            expires_at=data.expires_at,
            max_uses=data.max_uses,
            uses=0,
            created_by=account_id,
        )
        try:
            async with session.begin_nested():
                session.add(code)
        except IntegrityError:  # a collision: ~50 random bits make this vanishingly rare
            continue
        return _code_out(settings, code)
    raise RuntimeError("could not find a free invite code")


async def list_codes(
    session: AsyncSession, settings: Settings, organisation_id: uuid.UUID, page: PageParams
) -> Page[InviteCodeOut]:
    rows = await repository.codes_page(session, organisation_id, page)
    items, cursor = id_page(rows, page, lambda c: c.id)
    return Page[InviteCodeOut](items=[_code_out(settings, c) for c in items], next_cursor=cursor)


async def _code(
    session: AsyncSession, organisation_id: uuid.UUID, code_id: uuid.UUID
) -> InviteCode:
    code = await repository.code_of(session, organisation_id, code_id)
    if code is None:
        raise InviteCodeNotFound()
    return code


async def get_code(
    session: AsyncSession, settings: Settings, organisation_id: uuid.UUID, code_id: uuid.UUID
) -> InviteCodeOut:
    return _code_out(settings, await _code(session, organisation_id, code_id))


async def revoke_code(
    session: AsyncSession, settings: Settings, organisation_id: uuid.UUID, code_id: uuid.UUID
) -> InviteCodeOut:
    """No one can use the code from now on (revoking it again changes nothing)."""
    code = await _code(session, organisation_id, code_id)
    if code.revoked_at is None:
        code.revoked_at = utcnow()
        await session.flush()
    return _code_out(settings, code)


async def qr_svg(
    session: AsyncSession, settings: Settings, organisation_id: uuid.UUID, code_id: uuid.UUID
) -> bytes:
    code = await _code(session, organisation_id, code_id)
    qr = segno.make(share_url(settings, code.code), error="m")
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", scale=8, border=2)
    return buffer.getvalue()


# Joining a cohort ---------------------------------------------------------------------------------


def _normalise(code: str) -> str:
    return code.strip().upper()


async def _use(session: AsyncSession, code: str) -> tuple[uuid.UUID, uuid.UUID]:
    """Count one use of the code, or say why it cannot be used."""
    code = _normalise(code)
    now = utcnow()
    used = await repository.use_code(session, code, now)
    if used is not None:
        return used
    found = await repository.code_by_text(session, code)
    if found is None:
        raise InviteCodeNotFound()
    row, status = found
    if row.revoked_at is not None:
        raise InviteCodeRevoked()
    if status is not OrganisationStatus.active:
        raise OrganisationSuspended("The organisation of this code is suspended.")
    if row.expires_at is not None and row.expires_at <= now:
        raise InviteCodeExpired()
    raise InviteCodeUsedUp()


async def join_new_shop(session: AsyncSession, shop: Shop, code: str) -> None:
    """A shop opened with a code joins the code's cohort (shops.open_shop calls this, in the
    transaction that opens it)."""
    code_id, organisation_id = await _use(session, code)
    _enter(session, shop, organisation_id, utcnow(), code_id=code_id)
    await session.flush()


async def join(session: AsyncSession, account_id: uuid.UUID, data: JoinIn) -> ShopCohortOut:
    """The caller's shop, in no cohort and never in one, joins the code's cohort."""
    shop = await repository.shop_of_owner(session, account_id, for_update=True)
    if shop is None:
        raise NoShop("You have no shop yet: open one with POST /v1/shops.")
    if shop.organisation_id is not None:
        raise ShopInCohort()
    if await repository.has_moved(session, shop.id):
        raise CohortAlreadyJoined()
    code_id, organisation_id = await _use(session, data.invite_code)
    now = utcnow()
    _enter(session, shop, organisation_id, now, code_id=code_id)
    await session.flush()
    return await shop_cohort(session, account_id)


async def shop_cohort(session: AsyncSession, account_id: uuid.UUID) -> ShopCohortOut:
    """The cohort the caller's shop is in (404 `not_in_cohort` if none)."""
    shop = await repository.shop_of_owner(session, account_id)
    if shop is None:
        raise NoShop("You have no shop yet: open one with POST /v1/shops.")
    if shop.organisation_id is None or shop.cohort_joined_at is None:
        raise NotInCohort()
    org = await _organisation(session, shop.organisation_id)
    return ShopCohortOut(
        organisation_id=org.id, organisation_name=org.name, cohort_joined_at=shop.cohort_joined_at
    )


# The cohort -------------------------------------------------------------------------------------


def day_range(settings: Settings, since: date | None, until: date | None) -> tuple[date, date]:
    """The local days asked for: by default the last 30, today included."""
    today = utcnow().astimezone(settings.zone).date()
    last = until or (today if since is None else min(today, since + timedelta(DEFAULT_DAYS - 1)))
    first = since or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first or (last - first).days >= MAX_DAYS:
        raise InvalidRange(f"{first} to {last}")
    return first, last


def _money(rows: Iterable[tuple[str, int, int, int]]) -> list[CohortMoney]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for currency, gmv, refunds, earnings in rows:
        m = sums[currency]
        m[0] += int(gmv)
        m[1] += int(refunds)
        m[2] += int(earnings)
    return [
        CohortMoney(currency=c, gmv_minor=g, refunds_minor=r, earnings_minor=e)
        for c, (g, r, e) in sorted(sums.items())
    ]


async def cohort(
    session: AsyncSession,
    settings: Settings,
    organisation_id: uuid.UUID,
    page: PageParams,
    *,
    since: date | None,
    until: date | None,
    inactive_days: int | None,
) -> CohortPage:
    """A page of the cohort's shops, newest first: activation, last active day, and clicks,
    orders, GMV and earnings over the local days asked for (orders counted on the day paid).
    With `inactive_days`, only shops with no activity in the last that many local days."""
    first, last = day_range(settings, since, until)
    today = utcnow().astimezone(settings.zone).date()
    inactive_before = None if inactive_days is None else today - timedelta(days=inactive_days - 1)
    rows = await repository.cohort_page(
        session, organisation_id, settings.time_zone, page.after_id(), page.limit, inactive_before
    )
    items, cursor = id_page(rows, page, lambda row: row.shop_id)
    ids = [row.shop_id for row in items]
    traffic = await repository.shops_traffic(session, ids, first, last) if ids else {}
    sales: dict[uuid.UUID, list[Any]] = defaultdict(list)
    if ids:
        for row in await repository.shops_sales(session, ids, first, last):
            sales[row[0]].append(row)
    shops = []
    for row in items:
        clicks, visitors = traffic.get(row.shop_id, (0, 0))
        own = sales.get(row.shop_id, [])
        shops.append(
            CohortShop(
                shop_id=row.shop_id,
                name=row.name,
                slug=row.slug,
                opened_at=row.opened_at,
                cohort_joined_at=row.cohort_joined_at,
                activation=Activation(
                    first_product_at=row.first_product_at,
                    first_link_at=row.first_link_at,
                    first_sale_at=row.first_sale_at,
                ),
                last_active_on=row.last_active_on,
                clicks=clicks,
                unique_visitors=visitors,
                orders=sum(int(r[2]) for r in own),
                completed_orders=sum(int(r[3]) for r in own),
                money=_money((r[1], r[4], r[5], r[6]) for r in own),
            )
        )
    return CohortPage(
        since=first,
        until=last,
        time_zone=settings.time_zone,
        items=shops,
        next_cursor=cursor,
    )


async def cohort_days(
    session: AsyncSession,
    settings: Settings,
    organisation_id: uuid.UUID,
    *,
    since: date | None,
    until: date | None,
) -> CohortDays:
    """The cohort's figures per local day, summed over the shops in it now."""
    first, last = day_range(settings, since, until)
    traffic = {
        row[0]: (int(row[1]), int(row[2]))
        for row in await repository.cohort_traffic_days(session, organisation_id, first, last)
    }
    sales: dict[date, list[Any]] = defaultdict(list)
    for row in await repository.cohort_sales_days(session, organisation_id, first, last):
        sales[row[0]].append(row)
    active = await repository.active_shops_by_day(session, organisation_id, first, last)
    days = []
    day = first
    while day <= last:
        clicks, visitors = traffic.get(day, (0, 0))
        rows = sales.get(day, [])
        days.append(
            CohortDay(
                day=day,
                shops_with_orders=active.get(day, 0),
                clicks=clicks,
                unique_visitors=visitors,
                orders=sum(int(r[3]) for r in rows),
                completed_orders=sum(int(r[4]) for r in rows),
                money=_money((r[1], r[5], r[6], r[7]) for r in rows),
            )
        )
        day += timedelta(days=1)
    sizes = await repository.cohort_sizes(session, [organisation_id])
    return CohortDays(
        since=first,
        until=last,
        time_zone=settings.time_zone,
        cohort_shops=sizes.get(organisation_id, 0),
        days=days,
    )


# Notices ----------------------------------------------------------------------------------------


def _notice_out(notice: Notice) -> NoticeOut:
    return NoticeOut.model_validate(notice)


async def send_notice(
    session: AsyncSession, organisation_id: uuid.UUID, account_id: uuid.UUID, data: NoticeIn
) -> NoticeOut:
    """To every shop in the cohort now (one INSERT ... SELECT); the app hears of it by the
    `organisation.notice` event and tells the shops, which read it in their notices."""
    await _active(session, organisation_id)
    notice = Notice(
        organisation_id=organisation_id,
        kind=data.kind,
        title=data.title,
        body=data.body,
        sent_by=account_id,
        recipients=0,
        reads=0,
    )
    session.add(notice)
    await session.flush()
    notice.recipients = await repository.address_cohort(session, notice.id, organisation_id)
    await session.flush()
    await webhooks.emit(
        session,
        EventType.organisation_notice,
        organisation_id,
        {
            "notice_id": str(notice.id),
            "organisation_id": str(organisation_id),
            "kind": str(notice.kind),
            "title": notice.title,
            "recipients": notice.recipients,
        },
    )
    return _notice_out(notice)


async def list_notices(
    session: AsyncSession, organisation_id: uuid.UUID, page: PageParams
) -> Page[NoticeOut]:
    rows = await repository.notices_page(session, organisation_id, page)
    items, cursor = id_page(rows, page, lambda n: n.id)
    return Page[NoticeOut](items=[_notice_out(n) for n in items], next_cursor=cursor)


async def _notice(
    session: AsyncSession, organisation_id: uuid.UUID, notice_id: uuid.UUID
) -> Notice:
    notice = await repository.notice(session, organisation_id, notice_id)
    if notice is None:
        raise NoticeNotFound()
    return notice


async def get_notice(
    session: AsyncSession, organisation_id: uuid.UUID, notice_id: uuid.UUID
) -> NoticeOut:
    return _notice_out(await _notice(session, organisation_id, notice_id))


async def list_recipients(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    notice_id: uuid.UUID,
    read: bool | None,
    page: PageParams,
) -> Page[NoticeRecipientOut]:
    """Who the notice went to, in shop order; `read` true: who has read it, false: who not."""
    await _notice(session, organisation_id, notice_id)
    rows = await repository.recipients_page(session, notice_id, read, page.after_id(), page.limit)
    items, cursor = id_page(rows, page, lambda row: row[0])
    return Page[NoticeRecipientOut](
        items=[
            NoticeRecipientOut(shop_id=s, name=name, slug=slug, read_at=at)
            for s, name, slug, at in items
        ],
        next_cursor=cursor,
    )


def _shop_notice_out(row: Any) -> ShopNoticeOut:
    notice, organisation_name, read_at = row
    return ShopNoticeOut(
        id=notice.id,
        organisation_id=notice.organisation_id,
        organisation_name=organisation_name,
        kind=notice.kind,
        title=notice.title,
        body=notice.body,
        created_at=notice.created_at,
        read_at=read_at,
    )


async def _shop_id(session: AsyncSession, account_id: uuid.UUID) -> uuid.UUID:
    shop = await repository.shop_of_owner(session, account_id)
    if shop is None:
        raise NoShop("You have no shop yet: open one with POST /v1/shops.")
    return shop.id


async def shop_notices(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[ShopNoticeOut]:
    shop_id = await _shop_id(session, account_id)
    rows = await repository.shop_notices(session, shop_id, page)
    items, cursor = id_page(rows, page, lambda row: row[0].id)
    return Page[ShopNoticeOut](items=[_shop_notice_out(r) for r in items], next_cursor=cursor)


async def read_notice(
    session: AsyncSession, account_id: uuid.UUID, notice_id: uuid.UUID
) -> ShopNoticeOut:
    """Mark a notice read (the first time counts; again changes nothing)."""
    shop_id = await _shop_id(session, account_id)
    if await repository.shop_notice(session, shop_id, notice_id) is None:
        raise NoticeNotFound()
    await repository.mark_read(session, shop_id, notice_id, utcnow())
    return _shop_notice_out(await repository.shop_notice(session, shop_id, notice_id))
