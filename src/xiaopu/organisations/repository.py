"""Queries for organisations: their members and codes, a code's atomic use, the cohort (shops
read and moved with our own SQL, not through the shops domain), its figures from the daily
rollups, and notices."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Select, and_, cast, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import (
    Account,
    CohortMove,
    InviteCode,
    Notice,
    NoticeRecipient,
    Order,
    Organisation,
    OrganisationMember,
    OrganisationRole,
    OrganisationStatus,
    Override,
    OverrideMonth,
    OverrideStatus,
    ShareLink,
    Shop,
    ShopDaily,
    ShopDailyTraffic,
    ShopProduct,
    Withdrawal,
    WithdrawalStatus,
)

# Organisations -------------------------------------------------------------------------------


async def get(
    session: AsyncSession, organisation_id: uuid.UUID, *, for_update: bool = False
) -> Organisation | None:
    stmt = select(Organisation).where(Organisation.id == organisation_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def page(session: AsyncSession, page: PageParams) -> Sequence[Organisation]:
    stmt = newest_first(select(Organisation), Organisation.id, page)
    return (await session.scalars(stmt)).all()


async def cohort_sizes(
    session: AsyncSession, organisation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Shops in each cohort now, off ix_shops_organisation_id."""
    stmt = (
        select(Shop.organisation_id, func.count())
        .where(Shop.organisation_id.in_(organisation_ids))
        .group_by(Shop.organisation_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(stmt) if row[0] is not None}


async def account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    return await session.get(Account, account_id)


# Members -------------------------------------------------------------------------------------


async def role(
    session: AsyncSession, organisation_id: uuid.UUID, account_id: uuid.UUID
) -> OrganisationRole | None:
    stmt = select(OrganisationMember.role).where(
        OrganisationMember.organisation_id == organisation_id,
        OrganisationMember.account_id == account_id,
    )
    return await session.scalar(stmt)


async def member(
    session: AsyncSession, organisation_id: uuid.UUID, account_id: uuid.UUID
) -> OrganisationMember | None:
    return await session.get(OrganisationMember, (organisation_id, account_id))


async def members_page(
    session: AsyncSession, organisation_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> Sequence[Any]:
    """(member, account) in account id order."""
    stmt = (
        select(OrganisationMember, Account)
        .join(Account, Account.id == OrganisationMember.account_id)
        .where(OrganisationMember.organisation_id == organisation_id)
    )
    if after is not None:
        stmt = stmt.where(OrganisationMember.account_id > after)
    stmt = stmt.order_by(OrganisationMember.account_id).limit(limit + 1)
    return (await session.execute(stmt)).all()


async def admins(session: AsyncSession, organisation_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(
        OrganisationMember.organisation_id == organisation_id,
        OrganisationMember.role == OrganisationRole.admin,
    )
    return int(await session.scalar(stmt) or 0)


async def memberships(
    session: AsyncSession, account_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> Sequence[Any]:
    """(organisation, role) of the account's organisations, newest first."""
    stmt = (
        select(Organisation, OrganisationMember.role)
        .join(OrganisationMember, OrganisationMember.organisation_id == Organisation.id)
        .where(OrganisationMember.account_id == account_id)
    )
    if after is not None:
        stmt = stmt.where(Organisation.id < after)
    stmt = stmt.order_by(Organisation.id.desc()).limit(limit + 1)
    return (await session.execute(stmt)).all()


# Invite codes --------------------------------------------------------------------------------


def codes_of(organisation_id: uuid.UUID) -> Select[InviteCode]:
    return select(InviteCode).where(InviteCode.organisation_id == organisation_id)


async def code_of(
    session: AsyncSession, organisation_id: uuid.UUID, code_id: uuid.UUID
) -> InviteCode | None:
    return await session.scalar(codes_of(organisation_id).where(InviteCode.id == code_id))


async def codes_page(
    session: AsyncSession, organisation_id: uuid.UUID, page: PageParams
) -> Sequence[InviteCode]:
    stmt = newest_first(codes_of(organisation_id), InviteCode.id, page)
    return (await session.scalars(stmt)).all()


async def code_by_text(session: AsyncSession, code: str) -> Any:
    """(code, organisation status) of a code, to say why it cannot be used."""
    stmt = (
        select(InviteCode, Organisation.status)
        .join(Organisation, Organisation.id == InviteCode.organisation_id)
        .where(InviteCode.code == code)
    )
    return (await session.execute(stmt)).one_or_none()


async def use_code(
    session: AsyncSession, code: str, at: datetime
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """Count one use of a usable code, atomically: (code id, organisation id), or None when it
    is not usable. The row lock orders concurrent uses; each rechecks the use limit against
    the count the one before it left (READ COMMITTED re-evaluates the WHERE on the new row)."""
    stmt = (
        update(InviteCode)
        .where(
            InviteCode.code == code,
            InviteCode.revoked_at.is_(None),
            or_(InviteCode.expires_at.is_(None), InviteCode.expires_at > at),
            or_(InviteCode.max_uses.is_(None), InviteCode.uses < InviteCode.max_uses),
            InviteCode.organisation_id == Organisation.id,
            Organisation.status == OrganisationStatus.active,
        )
        .values(uses=InviteCode.uses + 1)
        .returning(InviteCode.id, InviteCode.organisation_id)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (row[0], row[1])


# Shops and their cohort ----------------------------------------------------------------------


async def shop_of_owner(
    session: AsyncSession, account_id: uuid.UUID, *, for_update: bool = False
) -> Shop | None:
    stmt = select(Shop).where(Shop.owner_account_id == account_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def shop(
    session: AsyncSession, shop_id: uuid.UUID, *, for_update: bool = False
) -> Shop | None:
    stmt = select(Shop).where(Shop.id == shop_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def has_moved(session: AsyncSession, shop_id: uuid.UUID) -> bool:
    """Whether the shop was ever in a cohort (joined by code or moved by an operator)."""
    stmt = select(literal(1)).where(CohortMove.shop_id == shop_id).limit(1)
    return await session.scalar(stmt) is not None


def add_move(session: AsyncSession, move: CohortMove) -> None:
    session.add(move)


# The cohort's page: activation and last activity read per shop by index seeks (its oldest and
# newest product, link and paid order, and its last day of clicks), never its whole history.
def _edge(column: Any, shop_column: Any, order: Any) -> Any:
    return select(column).where(shop_column == Shop.id).order_by(order).limit(1).scalar_subquery()


def _local_day(ts: Any, zone: str) -> Any:
    return cast(func.timezone(zone, ts), Date)


async def cohort_page(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    zone: str,
    after: uuid.UUID | None,
    limit: int,
    inactive_before: date | None,
) -> Sequence[Any]:
    """Cohort shops newest first, each with its activation times and last active local day;
    with `inactive_before`, only shops with no activity on or after that day."""
    paid = and_(Order.shop_id == Shop.id, Order.paid_at.is_not(None))
    first_sale = select(func.min(Order.paid_at)).where(paid).scalar_subquery()
    last_sale = select(func.max(Order.paid_at)).where(paid).scalar_subquery()
    last_click = (
        select(func.max(ShopDailyTraffic.day))
        .where(ShopDailyTraffic.shop_id == Shop.id)
        .scalar_subquery()
    )
    last_product = _edge(ShopProduct.created_at, ShopProduct.shop_id, ShopProduct.id.desc())
    last_link = _edge(ShareLink.created_at, ShareLink.shop_id, ShareLink.id.desc())
    last_active = func.greatest(
        _local_day(last_sale, zone),
        _local_day(last_product, zone),
        _local_day(last_link, zone),
        last_click,
    )
    inner = select(
        Shop.id.label("shop_id"),
        Shop.name,
        Shop.slug,
        Shop.created_at.label("opened_at"),
        Shop.cohort_joined_at,
        _edge(ShopProduct.created_at, ShopProduct.shop_id, ShopProduct.id).label(
            "first_product_at"
        ),
        _edge(ShareLink.created_at, ShareLink.shop_id, ShareLink.id).label("first_link_at"),
        first_sale.label("first_sale_at"),
        last_active.label("last_active_on"),
    ).where(Shop.organisation_id == organisation_id)
    if after is not None:
        inner = inner.where(Shop.id < after)
    cohort = inner.order_by(Shop.id.desc()).subquery("cohort")
    stmt = select(cohort)
    if inactive_before is not None:
        stmt = stmt.where(
            or_(cohort.c.last_active_on.is_(None), cohort.c.last_active_on < inactive_before)
        )
    stmt = stmt.order_by(cohort.c.shop_id.desc()).limit(limit + 1)
    return (await session.execute(stmt)).all()


# What stands of a shop's earnings: everything not forfeited or taken back.
_STANDING = (
    ShopDaily.earnings_pending_minor
    + ShopDaily.earnings_held_minor
    + ShopDaily.earnings_available_minor
    + ShopDaily.earnings_paid_minor
)


async def shops_traffic(
    session: AsyncSession, shop_ids: Sequence[uuid.UUID], since: date, until: date
) -> dict[uuid.UUID, tuple[int, int]]:
    stmt = (
        select(
            ShopDailyTraffic.shop_id,
            func.sum(ShopDailyTraffic.clicks),
            func.sum(ShopDailyTraffic.unique_visitors),
        )
        .where(ShopDailyTraffic.shop_id.in_(shop_ids), ShopDailyTraffic.day.between(since, until))
        .group_by(ShopDailyTraffic.shop_id)
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in await session.execute(stmt)}


async def shops_sales(
    session: AsyncSession, shop_ids: Sequence[uuid.UUID], since: date, until: date
) -> Sequence[Any]:
    """(shop, currency, orders, completed, GMV, refunds, standing earnings) over the days."""
    stmt = (
        select(
            ShopDaily.shop_id,
            ShopDaily.currency,
            func.sum(ShopDaily.orders),
            func.sum(ShopDaily.completed_orders),
            func.sum(ShopDaily.gmv_minor),
            func.sum(ShopDaily.refunds_minor),
            func.sum(_STANDING),
        )
        .where(ShopDaily.shop_id.in_(shop_ids), ShopDaily.day.between(since, until))
        .group_by(ShopDaily.shop_id, ShopDaily.currency)
    )
    return (await session.execute(stmt)).all()


def _members(organisation_id: uuid.UUID) -> Any:
    return select(Shop.id).where(Shop.organisation_id == organisation_id)


async def cohort_traffic_days(
    session: AsyncSession, organisation_id: uuid.UUID, since: date, until: date
) -> Sequence[Any]:
    """(day, clicks, unique visitors) summed over the cohort's shops now."""
    stmt = (
        select(
            ShopDailyTraffic.day,
            func.sum(ShopDailyTraffic.clicks),
            func.sum(ShopDailyTraffic.unique_visitors),
        )
        .where(
            ShopDailyTraffic.shop_id.in_(_members(organisation_id)),
            ShopDailyTraffic.day.between(since, until),
        )
        .group_by(ShopDailyTraffic.day)
    )
    return (await session.execute(stmt)).all()


async def cohort_sales_days(
    session: AsyncSession, organisation_id: uuid.UUID, since: date, until: date
) -> Sequence[Any]:
    """(day, currency, shops with orders, orders, completed, GMV, refunds, standing earnings)
    summed over the cohort's shops now."""
    stmt = (
        select(
            ShopDaily.day,
            ShopDaily.currency,
            func.count(func.distinct(ShopDaily.shop_id)).filter(ShopDaily.orders > 0),
            func.sum(ShopDaily.orders),
            func.sum(ShopDaily.completed_orders),
            func.sum(ShopDaily.gmv_minor),
            func.sum(ShopDaily.refunds_minor),
            func.sum(_STANDING),
        )
        .where(
            ShopDaily.shop_id.in_(_members(organisation_id)),
            ShopDaily.day.between(since, until),
        )
        .group_by(ShopDaily.day, ShopDaily.currency)
    )
    return (await session.execute(stmt)).all()


async def active_shops_by_day(
    session: AsyncSession, organisation_id: uuid.UUID, since: date, until: date
) -> dict[date, int]:
    """Cohort shops with a paid order each day (whatever its currency)."""
    stmt = (
        select(ShopDaily.day, func.count(func.distinct(ShopDaily.shop_id)))
        .where(
            ShopDaily.shop_id.in_(_members(organisation_id)),
            ShopDaily.day.between(since, until),
            ShopDaily.orders > 0,
        )
        .group_by(ShopDaily.day)
    )
    return {row[0]: int(row[1]) for row in await session.execute(stmt)}


# Notices -------------------------------------------------------------------------------------


async def address_cohort(
    session: AsyncSession, notice_id: uuid.UUID, organisation_id: uuid.UUID
) -> int:
    """Make every shop in the cohort now a recipient: one INSERT ... SELECT."""
    stmt = insert(NoticeRecipient).from_select(
        ["notice_id", "shop_id"],
        select(literal(notice_id), Shop.id).where(Shop.organisation_id == organisation_id),
    )
    result: Any = await session.execute(stmt)
    return int(result.rowcount)


async def notice(
    session: AsyncSession, organisation_id: uuid.UUID, notice_id: uuid.UUID
) -> Notice | None:
    stmt = select(Notice).where(Notice.organisation_id == organisation_id, Notice.id == notice_id)
    return await session.scalar(stmt)


async def notices_page(
    session: AsyncSession, organisation_id: uuid.UUID, page: PageParams
) -> Sequence[Notice]:
    stmt = newest_first(
        select(Notice).where(Notice.organisation_id == organisation_id), Notice.id, page
    )
    return (await session.scalars(stmt)).all()


async def recipients_page(
    session: AsyncSession,
    notice_id: uuid.UUID,
    read: bool | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Any]:
    """(shop id, name, slug, read at) of a notice's recipients in shop id order."""
    stmt = (
        select(NoticeRecipient.shop_id, Shop.name, Shop.slug, NoticeRecipient.read_at)
        .join(Shop, Shop.id == NoticeRecipient.shop_id)
        .where(NoticeRecipient.notice_id == notice_id)
    )
    if read is not None:
        stmt = stmt.where(
            NoticeRecipient.read_at.is_not(None) if read else NoticeRecipient.read_at.is_(None)
        )
    if after is not None:
        stmt = stmt.where(NoticeRecipient.shop_id > after)
    stmt = stmt.order_by(NoticeRecipient.shop_id).limit(limit + 1)
    return (await session.execute(stmt)).all()


async def shop_notices(
    session: AsyncSession, shop_id: uuid.UUID, page: PageParams
) -> Sequence[Any]:
    """(notice, organisation name, read at) of the shop's notices, newest first."""
    stmt = (
        select(Notice, Organisation.name, NoticeRecipient.read_at)
        .join(NoticeRecipient, NoticeRecipient.notice_id == Notice.id)
        .join(Organisation, Organisation.id == Notice.organisation_id)
        .where(NoticeRecipient.shop_id == shop_id)
    )
    after = page.after_id()
    if after is not None:
        stmt = stmt.where(NoticeRecipient.notice_id < after)
    stmt = stmt.order_by(NoticeRecipient.notice_id.desc()).limit(page.limit + 1)
    return (await session.execute(stmt)).all()


async def shop_notice(session: AsyncSession, shop_id: uuid.UUID, notice_id: uuid.UUID) -> Any:
    stmt = (
        select(Notice, Organisation.name, NoticeRecipient.read_at)
        .join(NoticeRecipient, NoticeRecipient.notice_id == Notice.id)
        .join(Organisation, Organisation.id == Notice.organisation_id)
        .where(NoticeRecipient.shop_id == shop_id, NoticeRecipient.notice_id == notice_id)
    )
    return (await session.execute(stmt)).one_or_none()


async def mark_read(
    session: AsyncSession, shop_id: uuid.UUID, notice_id: uuid.UUID, at: datetime
) -> bool:
    """Record the first reading of a notice by its shop, and count it once on the notice."""
    stmt = (
        update(NoticeRecipient)
        .where(
            NoticeRecipient.notice_id == notice_id,
            NoticeRecipient.shop_id == shop_id,
            NoticeRecipient.read_at.is_(None),
        )
        .values(read_at=at)
        .returning(NoticeRecipient.shop_id)
        .execution_options(synchronize_session=False)
    )
    if (await session.execute(stmt)).one_or_none() is None:
        return False
    await session.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(reads=Notice.reads + 1)
        .execution_options(synchronize_session=False)
    )
    return True


# Overrides -----------------------------------------------------------------------------------

MonthKey = tuple[uuid.UUID, date, str]  # organisation, local month (its first day), currency


async def override_terms(session: AsyncSession, shop_ids: Sequence[uuid.UUID]) -> Sequence[Any]:
    """(shop_id, organisation_id, override_bps, currency, monthly_cap_minor) of these shops that
    are in an active organisation's cohort now."""
    if not shop_ids:
        return []
    stmt = (
        select(
            Shop.id.label("shop_id"),
            Organisation.id.label("organisation_id"),
            Organisation.override_bps,
            Organisation.currency,
            Organisation.monthly_cap_minor,
        )
        .join(Organisation, Organisation.id == Shop.organisation_id)
        .where(Shop.id.in_(sorted(set(shop_ids))))
        .where(Organisation.status == OrganisationStatus.active)
    )
    return (await session.execute(stmt)).all()


async def lock_months(
    session: AsyncSession, keys: Sequence[MonthKey]
) -> dict[MonthKey, OverrideMonth]:
    """The month counters of these keys, opened when missing and locked in one order (by
    organisation, month and currency), whoever takes them: accrual, reversal or close."""
    if not keys:
        return {}
    ordered = sorted(set(keys))
    await session.execute(
        pg_insert(OverrideMonth)
        .values(
            [
                {
                    "id": new_id(),
                    "organisation_id": org,
                    "month": month,
                    "currency": currency,
                    "accrued_minor": 0,
                    "released_minor": 0,
                    "returned_minor": 0,
                }
                for org, month, currency in ordered
            ]
        )
        .on_conflict_do_nothing(index_elements=["organisation_id", "month", "currency"])
    )
    out: dict[MonthKey, OverrideMonth] = {}
    for org, month, currency in ordered:
        row = (
            await session.scalars(
                select(OverrideMonth)
                .where(
                    OverrideMonth.organisation_id == org,
                    OverrideMonth.month == month,
                    OverrideMonth.currency == currency,
                )
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).one()
        out[(org, month, currency)] = row
    return out


def add_overrides(session: AsyncSession, rows: Sequence[Override]) -> None:
    session.add_all(rows)


async def overrides_of(
    session: AsyncSession, supplier_order_id: uuid.UUID, *, lock: bool = False
) -> Sequence[Override]:
    stmt = (
        select(Override)
        .where(Override.supplier_order_id == supplier_order_id)
        .order_by(Override.id)
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).all()


async def months_to_close(session: AsyncSession, before: date) -> Sequence[MonthKey]:
    """Open month counters of months that started before `before` (a month that has ended)."""
    rows = await session.execute(
        select(OverrideMonth.organisation_id, OverrideMonth.month, OverrideMonth.currency)
        .where(OverrideMonth.closed_at.is_(None), OverrideMonth.month < before)
        .order_by(OverrideMonth.organisation_id, OverrideMonth.month, OverrideMonth.currency)
    )
    return [(r.organisation_id, r.month, r.currency) for r in rows]


async def active_shops(session: AsyncSession, key: MonthKey) -> int:
    """Cohort shops with a completed sale in the month (some units kept at completion)."""
    org, month, currency = key
    value = await session.scalar(
        select(func.count(func.distinct(Override.shop_id))).where(
            Override.organisation_id == org,
            Override.month == month,
            Override.currency == currency,
            Override.fee_minor > 0,
        )
    )
    return int(value or 0)


async def close_pending(session: AsyncSession, key: MonthKey, status: OverrideStatus) -> int:
    """Move the month's pending overrides to `status`; what they still hold, summed."""
    org, month, currency = key
    rows = await session.execute(
        update(Override)
        .where(
            Override.organisation_id == org,
            Override.month == month,
            Override.currency == currency,
            Override.status == OverrideStatus.pending,
        )
        .values(status=status, updated_at=func.now())
        .returning(Override.accrued_minor - Override.reversed_minor)
        .execution_options(synchronize_session=False)
    )
    return sum(int(r[0]) for r in rows)


async def overrides_page(
    session: AsyncSession, organisation_id: uuid.UUID, month: date, page: PageParams
) -> Sequence[Override]:
    stmt = select(Override).where(
        Override.organisation_id == organisation_id, Override.month == month
    )
    return (await session.scalars(newest_first(stmt, Override.id, page))).all()


async def override_totals(
    session: AsyncSession, organisation_id: uuid.UUID, month: date
) -> Sequence[Any]:
    """Per currency: accrued, reversed and clawed back over the month's override lines."""
    stmt = (
        select(
            Override.currency,
            func.count().label("lines"),
            func.coalesce(func.sum(Override.accrued_minor), 0).label("accrued"),
            func.coalesce(func.sum(Override.reversed_minor), 0).label("reversed"),
            func.coalesce(func.sum(Override.clawed_back_minor), 0).label("clawed_back"),
        )
        .where(Override.organisation_id == organisation_id, Override.month == month)
        .group_by(Override.currency)
        .order_by(Override.currency)
    )
    return (await session.execute(stmt)).all()


async def months_of(
    session: AsyncSession, organisation_id: uuid.UUID, month: date
) -> Sequence[OverrideMonth]:
    stmt = (
        select(OverrideMonth)
        .where(OverrideMonth.organisation_id == organisation_id, OverrideMonth.month == month)
        .order_by(OverrideMonth.currency)
    )
    return (await session.scalars(stmt)).all()


async def paid_withdrawals(session: AsyncSession, organisation_id: uuid.UUID) -> dict[str, int]:
    """What the organisation's withdrawals have paid out, per currency (payouts pays them)."""
    stmt = (
        select(Withdrawal.currency, func.sum(Withdrawal.amount_minor))
        .where(
            Withdrawal.organisation_id == organisation_id,
            Withdrawal.status == WithdrawalStatus.paid,
        )
        .group_by(Withdrawal.currency)
    )
    return {currency: int(total) for currency, total in (await session.execute(stmt)).all()}
