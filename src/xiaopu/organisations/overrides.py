"""An organisation's override, its side: the terms commissions asks for, the month counters the
cap is kept in, the month close, and what the organisation reads (lines, statement, wallet).

The money of an accrual and of a refund's reversal is computed and posted by commissions
(commissions → organisations → ledger); the month close posts here.

One level only: an override is computed from a cohort shop's sale's platform fee, and from
nothing else. No override is ever computed from another override or from an organisation's
income, and no one earns on an organisation's override: multi-level reward chains are illegal
pyramid selling in many jurisdictions, China's among them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.config import Settings
from xiaopu.db import unit_of_work
from xiaopu.errors import AppError
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models import Override, OverrideMonth, OverrideStatus
from xiaopu.models.ledger import PLATFORM_ID, OwnerKind, Purpose
from xiaopu.organisations import repository
from xiaopu.organisations.repository import MonthKey
from xiaopu.organisations.schemas import (
    OverrideMonthOutcome,
    OverrideOut,
    OverrideStatement,
    OverrideTotals,
    OverrideWallet,
    OverrideWalletBalance,
)

log = structlog.get_logger(__name__)

__all__ = ["MonthKey", "Terms"]


class InvalidMonth(AppError):
    status = 422
    code = "invalid_month"
    title = "The month is not a calendar month (YYYY-MM)"


@dataclass(frozen=True, slots=True)
class Terms:
    """A shop's organisation's override terms, read when its sale completes."""

    organisation_id: uuid.UUID
    override_bps: int
    currency: str
    monthly_cap_minor: int


def month_of(at: datetime, zone: ZoneInfo) -> date:
    """The local month (its first day) of a moment."""
    local = at.astimezone(zone)
    return date(local.year, local.month, 1)


def parse_month(value: str) -> date:
    try:
        year, month = (int(x) for x in value.split("-"))
        return date(year, month, 1)
    except ValueError as exc:
        raise InvalidMonth(extra={"month": value}) from exc


def account_keys(organisation_id: uuid.UUID, currency: str) -> list[ledger.AccountKey]:
    """The organisation's counted accounts an override posting can touch."""
    return [
        (OwnerKind.organisation, organisation_id, Purpose.earnings_pending, currency),
        (OwnerKind.organisation, organisation_id, Purpose.earnings_available, currency),
    ]


async def terms_for(session: AsyncSession, shop_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Terms]:
    """The override terms of each of these shops that is in an active organisation's cohort
    now (a shop in no cohort, or in a suspended organisation's, earns its organisation none)."""
    return {
        row.shop_id: Terms(
            row.organisation_id, row.override_bps, row.currency, row.monthly_cap_minor
        )
        for row in await repository.override_terms(session, shop_ids)
    }


async def lock_months(
    session: AsyncSession, keys: Sequence[MonthKey]
) -> dict[MonthKey, OverrideMonth]:
    """The month counters, locked in one order (organisation, month, currency). The caller
    changes `accrued_minor` under the lock: up at accrual (never past the cap), down at a
    reversal (giving cap room back). Lock the ledger accounts first, in their global order."""
    return await repository.lock_months(session, keys)


def record(session: AsyncSession, rows: Sequence[Override]) -> None:
    repository.add_overrides(session, rows)


async def of_supplier_order(
    session: AsyncSession, supplier_order_id: uuid.UUID, *, lock: bool = False
) -> Sequence[Override]:
    return await repository.overrides_of(session, supplier_order_id, lock=lock)


# Month close ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CloseRun:
    closed: int
    released_minor: int
    returned_minor: int


async def close_month(
    session: AsyncSession, key: MonthKey, min_active_shops: int, now: datetime
) -> OverrideMonth | None:
    """Close one organisation's month in one currency: its pending overrides become available
    if at least `min_active_shops` cohort shops completed a sale in it, or go back to the
    platform's fees with the reason recorded. None if it was closed already."""
    org, month, currency = key
    await ledger.lock_accounts(session, account_keys(org, currency))
    row = (await repository.lock_months(session, [key]))[key]
    if row.closed_at is not None:
        return None
    active = await repository.active_shops(session, key)
    met = active >= min_active_shops
    status = OverrideStatus.available if met else OverrideStatus.returned
    amount = await repository.close_pending(session, key, status)
    to = (
        Leg(OwnerKind.organisation, org, Purpose.earnings_available, -amount)
        if met
        else Leg(OwnerKind.platform, PLATFORM_ID, Purpose.fees, -amount)
    )
    await ledger.post(
        session,
        kind="override_close",
        cause=f"override-close:{org}:{month:%Y-%m}:{currency}",
        currency=currency,
        legs=[Leg(OwnerKind.organisation, org, Purpose.earnings_pending, amount), to],
    )
    row.closed_at = now
    row.active_shops = active
    row.required = min_active_shops
    row.rule_met = met
    if met:
        row.released_minor = amount
    else:
        row.returned_minor = amount
        row.reason = (
            f"activity rule missed: {active} cohort shop(s) with a completed sale in "
            f"{month:%Y-%m}, {min_active_shops} required"
        )
    await session.flush()
    return row


Step = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def close_months_in_steps(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime | None = None
) -> CloseRun:
    """What the `organisations.close_months` job runs: every ended local month with an open
    counter closes, one organisation-month per transaction."""
    return await _close(lambda: unit_of_work(sessions), settings, now)


async def close_months(
    session: AsyncSession, settings: Settings, now: datetime | None = None
) -> CloseRun:
    """close_months_in_steps inside the caller's transaction, each month in a savepoint."""

    @asynccontextmanager
    async def savepoint() -> AsyncIterator[AsyncSession]:
        async with session.begin_nested():
            yield session

    return await _close(savepoint, settings, now)


async def _close(step: Step, settings: Settings, now: datetime | None) -> CloseRun:
    now = now or utcnow()
    this_month = month_of(now, settings.zone)
    async with step() as session:
        due = await repository.months_to_close(session, this_month)
    closed = released = returned = 0
    for key in due:
        async with step() as session:
            org = await repository.get(session, key[0])
            if org is None:  # a foreign key: never
                continue
            row = await close_month(session, key, org.min_active_shops, now)
            if row is not None:
                closed += 1
                released += row.released_minor
                returned += row.returned_minor
    return CloseRun(closed, released, returned)


# Reading -------------------------------------------------------------------------------------


def _out(row: Override) -> OverrideOut:
    return OverrideOut(
        id=row.id,
        shop_id=row.shop_id,
        order_id=row.order_id,
        supplier_order_id=row.supplier_order_id,
        order_line_id=row.order_line_id,
        month=f"{row.month:%Y-%m}",
        currency=row.currency,
        fee_minor=row.fee_minor,
        rate_bps=row.rate_bps,
        accrued_minor=row.accrued_minor,
        reversed_minor=row.reversed_minor,
        clawed_back_minor=row.clawed_back_minor,
        net_minor=row.accrued_minor - row.reversed_minor,
        status=row.status,
        created_at=row.created_at,
    )


async def list_overrides(
    session: AsyncSession, organisation_id: uuid.UUID, month: str, page: PageParams
) -> Page[OverrideOut]:
    rows = await repository.overrides_page(session, organisation_id, parse_month(month), page)
    items, cursor = id_page(rows, page, lambda r: r.id)
    return Page[OverrideOut](items=[_out(r) for r in items], next_cursor=cursor)


async def statement(
    session: AsyncSession, organisation_id: uuid.UUID, month: str
) -> OverrideStatement:
    """The month's totals per currency and its rule's outcome. Its movements are the ledger's:
    pending moves by accrued − (reversed − clawed back) − released − returned, and available
    by released − clawed back."""
    first = parse_month(month)
    lines = {
        r.currency: r for r in await repository.override_totals(session, organisation_id, first)
    }
    months = {m.currency: m for m in await repository.months_of(session, organisation_id, first)}
    totals = []
    for currency in sorted(set(lines) | set(months)):
        line = lines.get(currency)
        m = months.get(currency)
        totals.append(
            OverrideTotals(
                currency=currency,
                lines=int(line.lines) if line else 0,
                accrued_minor=int(line.accrued) if line else 0,
                reversed_minor=int(line.reversed) if line else 0,
                clawed_back_minor=int(line.clawed_back) if line else 0,
                released_minor=m.released_minor if m else 0,
                returned_minor=m.returned_minor if m else 0,
                cap_used_minor=m.accrued_minor if m else 0,
                outcome=None
                if m is None or m.closed_at is None
                else OverrideMonthOutcome(
                    closed_at=m.closed_at,
                    active_shops=m.active_shops or 0,
                    required=m.required or 0,
                    rule_met=bool(m.rule_met),
                    reason=m.reason,
                ),
            )
        )
    return OverrideStatement(organisation_id=organisation_id, month=month, totals=totals)


async def wallet(session: AsyncSession, organisation_id: uuid.UUID) -> OverrideWallet:
    """Pending, available and being withdrawn per currency, from the ledger's kept counters;
    paid out, from the organisation's paid withdrawals."""
    balances = await ledger.balances(session, OwnerKind.organisation, organisation_id)
    paid = await repository.paid_withdrawals(session, organisation_id)
    return OverrideWallet(
        organisation_id=organisation_id,
        balances=[
            OverrideWalletBalance(
                currency=currency,
                pending_minor=-balances.get(currency, {}).get(Purpose.earnings_pending, 0),
                available_minor=-balances.get(currency, {}).get(Purpose.earnings_available, 0),
                withdrawing_minor=-balances.get(currency, {}).get(Purpose.earnings_withdrawing, 0),
                paid_minor=paid.get(currency, 0),
            )
            for currency in sorted(balances.keys() | paid.keys())
        ],
    )
