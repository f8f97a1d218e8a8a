"""Supplier balances, and the close of a settlement period: per supplier and currency, every
movement of `payable` not yet settled is frozen into a numbered statement, and its net moves to
`payable_settling` for a payout (or stays behind as a negative carry)."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.audit import service as audit
from xiaopu.config import Settings
from xiaopu.db import unit_of_work
from xiaopu.errors import Conflict, InvalidCursor, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.money import major_units
from xiaopu.kit.pagination import Page, PageParams, decode_cursor, encode_cursor, id_page
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models import AuditAction, Commission
from xiaopu.models.ledger import Beneficiary, OwnerKind, PartKind, PartStatus, Purpose
from xiaopu.models.settlements import (
    Settlement,
    SettlementLine,
    SettlementLineKind,
    SupplierPayout,
    SupplierPayoutStatus,
)
from xiaopu.settlements import periods, repository
from xiaopu.settlements.periods import Period
from xiaopu.settlements.schemas import (
    SettlementDetail,
    SettlementLineOut,
    SettlementOut,
    SupplierBalance,
    SupplierPayoutOut,
)

# The parts a supplier pays out of its share for the shop: the commission and a campaign's boost.
_SUPPLIER_FUNDED = frozenset({PartKind.commission, PartKind.boost})
SHOP_BOOST = (Beneficiary.shop, PartKind.boost)

log = structlog.get_logger(__name__)

# A refund reversed a line after its order completed when the line was available then.
_COMPLETED = {PartStatus.available, PartStatus.paid}


class SettlementMismatch(Exception):
    """A bug, never a client's doing: the movements a close found do not add up to the
    supplier's `payable` balance, so it freezes nothing for that supplier."""


class SettlementNotFound(NotFound):
    code = "settlement_not_found"
    title = "Settlement not found"


class SupplierPayoutNotFound(NotFound):
    code = "supplier_payout_not_found"
    title = "Supplier payout not found"


class PayoutNotRetryable(Conflict):
    code = "supplier_payout_not_retryable"
    title = "Only a failed supplier payout can be retried"


# Balances ------------------------------------------------------------------------------------


async def balances(session: AsyncSession, supplier_id: uuid.UUID) -> list[SupplierBalance]:
    by_currency = await ledger.balances(session, OwnerKind.supplier, supplier_id)
    paid = await repository.paid_totals(session, supplier_id)
    out = []
    for currency in sorted(by_currency.keys() | paid.keys()):
        purposes = by_currency.get(currency, {})
        # The platform owes the supplier: credits, negative in the ledger's sign.
        payable = -purposes.get(Purpose.payable, 0)
        out.append(
            SupplierBalance(
                currency=currency,
                pending_minor=-purposes.get(Purpose.payable_pending, 0),
                payable_minor=max(payable, 0),
                in_settlement_minor=-purposes.get(Purpose.payable_settling, 0),
                paid_minor=paid.get(currency, 0),
                negative_carry_minor=max(-payable, 0),
            )
        )
    return out


# Closing a period ----------------------------------------------------------------------------


@dataclass
class _Line:
    kind: SettlementLineKind
    source: str
    at: datetime
    order_id: uuid.UUID | None
    supplier_order_id: uuid.UUID | None
    net_minor: int
    sales_minor: int = 0
    commission_minor: int = 0
    platform_fee_minor: int = 0
    shipping_minor: int = 0
    other_minor: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        # The net is the ledger's; whatever the breakdown does not explain of it shows as
        # `other` (nothing, when the commission lines and the ledger agree, as they are built to).
        explained = (
            self.sales_minor - self.commission_minor - self.platform_fee_minor + self.shipping_minor
        )
        self.other_minor = self.net_minor - explained


def _completion_line(
    done: repository.Completion,
    parts: Sequence[Commission],
    events: dict[uuid.UUID, list[repository.PartEvent]],
) -> _Line:
    """A completed supplier order as the supplier reads it: what each part held when it
    completed (refunds after completion are lines of their own), and the net its completion
    made payable, exactly as the completion posting credited it. `events` are by part."""
    source = f"completion:{done.supplier_order_id}"
    mine = [e for part in parts for e in events.get(part.id, [])]
    # Refunds after completion found the parts available: their reversals are not in here.
    later = {e.cause for e in mine if e.action == "reversed" and e.status in _COMPLETED}
    held: dict[tuple[Beneficiary, PartKind], int] = defaultdict(int)
    released = 0
    given_back = 0
    for part in parts:
        own = events.get(part.id, [])
        before = sum(e.amount_minor for e in own if e.action == "reversed" and e.cause not in later)
        held[(part.beneficiary, part.kind)] += part.accrued_minor - before
        if part.beneficiary is Beneficiary.supplier:
            released += sum(
                e.amount_minor for e in own if e.action == "released" and e.cause == source
            )
        elif part.kind in _SUPPLIER_FUNDED:
            # A hold refused before completion: its commission came back to the supplier and
            # became payable with the rest of the order (the markup went to the platform).
            given_back += sum(
                e.amount_minor for e in own if e.action == "forfeit_completed" and e.cause == source
            )
    share = held[(Beneficiary.supplier, PartKind.supplier_share)]
    # A campaign's boost is commission the supplier pays on top: a statement counts it in.
    sold_commission = held[(Beneficiary.shop, PartKind.commission)] + held[SHOP_BOOST]
    commission = sold_commission - given_back
    released += given_back
    fee = held[(Beneficiary.platform, PartKind.platform_fee)]
    return _Line(
        kind=SettlementLineKind.sale,
        source=source,
        at=done.completed_at,
        order_id=done.order_id,
        supplier_order_id=done.supplier_order_id,
        net_minor=released,
        sales_minor=share + sold_commission + fee,
        commission_minor=commission,
        platform_fee_minor=fee,
        shipping_minor=held[(Beneficiary.supplier, PartKind.shipping)],
    )


def _cause_id(cause: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(cause.split(":", 2)[1])
    except (IndexError, ValueError):
        return None


async def _posting_lines(
    session: AsyncSession, supplier_id: uuid.UUID, postings: Sequence[repository.Posting]
) -> list[_Line]:
    """A line per other movement of `payable`, its net the ledger's own amount: a refund after
    completion with the parts it took back; a forfeited hold as commission given back."""
    refund_ids = [
        i for p in postings if p.kind == "refund" and (i := _cause_id(p.cause)) is not None
    ]
    refunds = await repository.refund_parts(session, refund_ids)
    held_parts = [
        i for p in postings if p.kind == "held_decision" and (i := _cause_id(p.cause)) is not None
    ]
    held_orders = await repository.orders_of(session, supplier_id, held_parts)
    refunded_parts = [so for so, _ in refunds.values() if so is not None]
    parts = await repository.parts_of(session, refunded_parts)
    part_of = {p.id: p for p in parts}
    reversals: dict[str, list[repository.PartEvent]] = defaultdict(list)
    for event in await repository.part_events(session, list(part_of)):
        if event.action == "reversed":
            reversals[event.cause].append(event)
    lines = []
    for posting in postings:
        net = -posting.amount_minor  # a credit to `payable` is owed to the supplier
        target = _cause_id(posting.cause)
        if posting.kind == "refund" and target in refunds:
            supplier_order_id, order_id = refunds[target]
            taken: dict[tuple[Beneficiary, PartKind], int] = defaultdict(int)
            refused = 0
            for event in reversals.get(posting.cause, []):
                part = part_of[event.commission_id]
                taken[(part.beneficiary, part.kind)] += event.amount_minor
                if part.kind in _SUPPLIER_FUNDED and event.status == PartStatus.forfeited:
                    # A refused hold's commission was given back to the supplier: taking it
                    # back is part of the sale taken back, not a commission returned.
                    refused += event.amount_minor
            commission = taken[(Beneficiary.shop, PartKind.commission)] + taken[SHOP_BOOST]
            fee = taken[(Beneficiary.platform, PartKind.platform_fee)]
            share = taken[(Beneficiary.supplier, PartKind.supplier_share)]
            line = _Line(
                kind=SettlementLineKind.refund,
                source=posting.cause,
                at=posting.at,
                order_id=order_id,
                supplier_order_id=supplier_order_id,
                net_minor=net,
                sales_minor=-(share + commission + fee),
                commission_minor=-(commission - refused),
                platform_fee_minor=-fee,
                shipping_minor=-taken[(Beneficiary.supplier, PartKind.shipping)],
            )
        elif posting.kind == "held_decision" and target in held_orders:
            # A shopkeeper's held commission forfeited after completion comes back to the
            # supplier: a commission given back.
            line = _Line(
                kind=SettlementLineKind.adjustment,
                source=posting.cause,
                at=posting.at,
                order_id=held_orders[target],
                supplier_order_id=target,
                net_minor=net,
                commission_minor=-net,
            )
        else:
            line = _Line(
                kind=SettlementLineKind.adjustment,
                source=posting.cause,
                at=posting.at,
                order_id=None,
                supplier_order_id=None,
                net_minor=net,
            )
        lines.append(line)
    return lines


async def _unsettled(session: AsyncSession, supplier_id: uuid.UUID, currency: str) -> list[_Line]:
    """Every movement of the supplier's `payable` in `currency` no settlement holds yet."""
    completions = await repository.unsettled_completions(session, supplier_id, currency)
    parts = await repository.parts_of(session, [c.supplier_order_id for c in completions])
    events: dict[uuid.UUID, list[repository.PartEvent]] = defaultdict(list)
    for event in await repository.part_events(session, [p.id for p in parts]):
        events[event.commission_id].append(event)
    by_order: dict[uuid.UUID, list[Commission]] = defaultdict(list)
    for part in parts:
        by_order[part.supplier_order_id].append(part)
    lines = [_completion_line(c, by_order[c.supplier_order_id], events) for c in completions]
    postings = await repository.unsettled_postings(session, supplier_id, currency)
    lines += await _posting_lines(session, supplier_id, postings)
    return lines


def _account(supplier_id: uuid.UUID, purpose: Purpose, currency: str) -> ledger.AccountKey:
    return (OwnerKind.supplier, supplier_id, purpose, currency)


async def close_supplier(session: AsyncSession, supplier_id: uuid.UUID, period: Period) -> int:
    """Freeze this supplier's statements for `period`, one per currency with movement before
    its end; returns how many. Idempotent, and two runs at once freeze each statement once:
    the supplier's lock, then its accounts' locks, are held until the transaction ends."""
    await repository.lock_supplier(session, supplier_id)
    currencies = await repository.payable_currencies(session, supplier_id)
    keys = [
        _account(supplier_id, purpose, currency)
        for currency in currencies
        for purpose in (Purpose.payable, Purpose.payable_settling)
    ]
    await ledger.lock_accounts(session, keys)
    frozen = 0
    for currency in currencies:
        if await _close_currency(session, supplier_id, currency, period):
            frozen += 1
    return frozen


async def _close_currency(
    session: AsyncSession, supplier_id: uuid.UUID, currency: str, period: Period
) -> bool:
    previous = await repository.latest(session, supplier_id, currency)
    if previous is not None and previous.period_start >= period.start:
        return False  # closed already (or a later period was)
    unsettled = await _unsettled(session, supplier_id, currency)
    carry_in = previous.carry_out_minor if previous is not None else 0
    # The books must agree before anything is frozen: what the supplier is owed in `payable`
    # is the last carry plus every movement not yet settled.
    owed = -await ledger.lock_balance(
        session, OwnerKind.supplier, supplier_id, Purpose.payable, currency
    )
    if owed != carry_in + sum(line.net_minor for line in unsettled):
        raise SettlementMismatch(
            f"supplier {supplier_id} {currency}: payable {owed}, carry {carry_in}, "
            f"unsettled {sum(line.net_minor for line in unsettled)}"
        )
    lines = [line for line in unsettled if line.at < period.end]
    if not lines:
        return False  # no movement in the period: the carry waits for the next one
    settlement = _statement(supplier_id, currency, period, lines, carry_in)
    settlement.number = await repository.last_number(session, supplier_id) + 1
    await repository.add(
        session,
        settlement,
        [
            SettlementLine(
                settlement_id=settlement.id,
                kind=line.kind,
                source=line.source,
                at=line.at,
                order_id=line.order_id,
                supplier_order_id=line.supplier_order_id,
                sales_minor=line.sales_minor,
                commission_minor=line.commission_minor,
                platform_fee_minor=line.platform_fee_minor,
                shipping_minor=line.shipping_minor,
                other_minor=line.other_minor,
                net_minor=line.net_minor,
            )
            for line in lines
        ],
    )
    if settlement.payout_minor > 0:
        amount = settlement.payout_minor
        await ledger.post(
            session,
            kind=repository.SETTLEMENT_KIND,
            cause=f"settlement:{settlement.id}",
            currency=currency,
            memo=f"statement {settlement.number} of supplier {supplier_id}",
            legs=[
                Leg(OwnerKind.supplier, supplier_id, Purpose.payable, amount),
                Leg(OwnerKind.supplier, supplier_id, Purpose.payable_settling, -amount),
            ],
        )
        session.add(
            SupplierPayout(
                supplier_id=supplier_id,
                settlement_id=settlement.id,
                currency=currency,
                amount_minor=amount,
                status=SupplierPayoutStatus.pending,
                attempts=0,
            )
        )
        await session.flush()
    return True


def _statement(
    supplier_id: uuid.UUID, currency: str, period: Period, lines: list[_Line], carry_in: int
) -> Settlement:
    lines_net = sum(line.net_minor for line in lines)
    net = carry_in + lines_net
    return Settlement(
        id=new_id(),
        supplier_id=supplier_id,
        currency=currency,
        period=period.kind,
        period_start=period.start,
        period_end=period.end,
        first_day=period.first_day,
        last_day=period.last_day,
        line_count=len(lines),
        sales_minor=sum(ln.sales_minor for ln in lines if ln.kind is not SettlementLineKind.refund),
        refunds_minor=-sum(ln.sales_minor for ln in lines if ln.kind is SettlementLineKind.refund),
        commission_minor=sum(ln.commission_minor for ln in lines),
        platform_fee_minor=sum(ln.platform_fee_minor for ln in lines),
        shipping_minor=sum(ln.shipping_minor for ln in lines),
        other_minor=sum(ln.other_minor for ln in lines),
        lines_net_minor=lines_net,
        carry_in_minor=carry_in,
        net_minor=net,
        payout_minor=max(net, 0),
        carry_out_minor=min(net, 0),
    )


@dataclass(frozen=True, slots=True)
class CloseResult:
    period: Period
    settlements: int
    failed_suppliers: int
    skipped: bool


Step = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def close_due(
    session: AsyncSession, settings: Settings, now: datetime | None = None
) -> CloseResult:
    """`close_due_in_steps` inside the caller's transaction, each supplier in a savepoint (for
    tests and callers that own one transaction; the job commits each supplier on its own)."""

    @asynccontextmanager
    async def savepoint() -> AsyncIterator[AsyncSession]:
        async with session.begin_nested():
            yield session

    return await _close(savepoint, settings, now)


async def close_due_in_steps(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime | None = None
) -> CloseResult:
    """What the `settlements.close` job runs: each supplier closes in a transaction of its own.
    In one transaction for all, each closed supplier's accounts would stay locked until the
    last one closed, taken in supplier order while completion and refunds take accounts in
    their own global order: a deadlock, and refunds waiting on the whole run."""
    return await _close(lambda: unit_of_work(sessions), settings, now)


async def _close(step: Step, settings: Settings, now: datetime | None) -> CloseResult:
    """Close the latest ended period for every supplier with unsettled movement before its
    end. A period closed for everyone is recorded and later runs skip it; a supplier whose
    books do not add up is logged and left out (the others close), and the next run tries it
    again. Late movements (committed after a close, timed before its end) go into the next
    statement."""
    period = periods.last_ended(settings.settlement_period, settings.zone, now or utcnow())
    async with step() as session:
        if await repository.closed(session, period.kind, period.start):
            return CloseResult(period, 0, 0, skipped=True)
        suppliers = await repository.candidate_suppliers(session, period.end)
    frozen = failed = 0
    for supplier_id in suppliers:
        try:
            async with step() as session:
                frozen += await close_supplier(session, supplier_id, period)
        except SettlementMismatch as exc:
            failed += 1
            log.error("settlement.mismatch", supplier_id=str(supplier_id), detail=str(exc))
    if not failed:
        async with step() as session:
            await repository.record_close(session, period.kind, period.start, frozen, utcnow())
    return CloseResult(period, frozen, failed, skipped=False)


# Reading -------------------------------------------------------------------------------------


def _payout_out(payout: SupplierPayout | None) -> SupplierPayoutOut | None:
    return None if payout is None else SupplierPayoutOut.model_validate(payout)


def _out(settlement: Settlement, payout: SupplierPayout | None) -> SettlementOut:
    out = SettlementOut.model_validate(settlement)
    out.payout = _payout_out(payout)
    return out


async def list_settlements(
    session: AsyncSession, supplier_id: uuid.UUID, page: PageParams
) -> Page[SettlementOut]:
    rows = await repository.page_of_settlements(session, supplier_id, page)
    items, cursor = id_page(rows, page, lambda s: s.id)
    payouts = await repository.payouts_of(session, [s.id for s in items])
    return Page[SettlementOut](
        items=[_out(s, payouts.get(s.id)) for s in items], next_cursor=cursor
    )


# Lines a CSV download reads per short transaction: what the stream holds at once.
CSV_CHUNK_LINES = 1000


def _line_cursor(line: SettlementLine) -> str:
    return encode_cursor([line.at.isoformat(), str(line.id)])


def _after_line(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        at, line_id = decode_cursor(cursor)
        return datetime.fromisoformat(str(at)), uuid.UUID(str(line_id))
    except ValueError as exc:
        raise InvalidCursor() from exc


async def get_settlement(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    settlement_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> SettlementDetail:
    """The statement's totals and payout with one page of its lines (a busy supplier's week
    holds tens of thousands: never all at once)."""
    settlement = await repository.settlement(session, supplier_id, settlement_id)
    if settlement is None:
        raise SettlementNotFound()
    payouts = await repository.payouts_of(session, [settlement.id])
    lines = await repository.lines_of(session, settlement.id, _after_line(cursor), limit + 1)
    detail = SettlementDetail.model_validate(settlement)
    detail.payout = _payout_out(payouts.get(settlement.id))
    detail.lines = [SettlementLineOut.model_validate(line) for line in lines[:limit]]
    detail.next_cursor = _line_cursor(lines[limit - 1]) if len(lines) > limit else None
    return detail


_AMOUNTS = (
    "sales",
    "commission",
    "platform_fee",
    "shipping",
    "other",
    "net",
)


async def settlement_csv(
    sessionmaker: async_sessionmaker[AsyncSession],
    settlement: SettlementDetail,
    settings: Settings,
) -> AsyncIterator[str]:
    """One row per line, then the carry in and the totals; integer minor units beside the
    same amounts in major units for people, and times in the platform's time zone.

    Streamed a chunk of lines at a time, each read in a short transaction of its own: a
    settlement's lines never change, so the pages join up, and neither the worker nor the
    connection holds the whole statement."""
    currency = settlement.currency

    def rows(kind: str, at: str, source: str, order: str, part: str, amounts: list[int]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(
            [
                settlement.number,
                kind,
                at,
                source,
                order,
                part,
                currency,
                *amounts,
                *(major_units(a, currency) for a in amounts),
            ]
        )
        return buffer.getvalue()

    header = io.StringIO()
    csv.writer(header).writerow(
        [
            "number",
            "row",
            "at_local",
            "source",
            "order_id",
            "supplier_order_id",
            "currency",
            *(f"{a}_minor" for a in _AMOUNTS),
            *(a for a in _AMOUNTS),
        ]
    )
    yield header.getvalue()
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        async with unit_of_work(sessionmaker) as session:
            lines = await repository.lines_of(session, settlement.id, after, CSV_CHUNK_LINES)
        yield "".join(
            rows(
                str(line.kind),
                line.at.astimezone(settings.zone).isoformat(),
                line.source,
                str(line.order_id or ""),
                str(line.supplier_order_id or ""),
                [
                    line.sales_minor,
                    line.commission_minor,
                    line.platform_fee_minor,
                    line.shipping_minor,
                    line.other_minor,
                    line.net_minor,
                ],
            )
            for line in lines
        )
        if len(lines) < CSV_CHUNK_LINES:
            break
        after = (lines[-1].at, lines[-1].id)
    yield rows("carry_in", "", "", "", "", [0, 0, 0, 0, 0, settlement.carry_in_minor])
    yield rows(
        "total",
        "",
        "",
        "",
        "",
        [
            settlement.sales_minor - settlement.refunds_minor,
            settlement.commission_minor,
            settlement.platform_fee_minor,
            settlement.shipping_minor,
            settlement.other_minor,
            settlement.net_minor,
        ],
    )


async def retry_payout(
    session: AsyncSession,
    supplier_id: uuid.UUID | None,
    payout_id: uuid.UUID,
    *,
    operator_id: uuid.UUID | None = None,
) -> SupplierPayoutOut:
    """Send a failed payout again (its money waited in `payable_settling`): the next payout
    run pays it under a new attempt's key. `supplier_id` None: an operator, for anyone's; an
    operator's retry is written to the audit log as `operator_id`'s."""
    payout = await repository.payout(session, payout_id, supplier_id=supplier_id, lock=True)
    if payout is None:
        raise SupplierPayoutNotFound()
    if payout.status is not SupplierPayoutStatus.failed:
        raise PayoutNotRetryable(extra={"current_status": str(payout.status)})
    before = {"status": payout.status, "failure_reason": payout.failure_reason}
    payout.status = SupplierPayoutStatus.pending
    payout.failure_reason = None
    await session.flush()
    if operator_id is not None:
        await audit.record(
            session,
            operator_id,
            AuditAction.settlement_payout_retry,
            "supplier_payout",
            payout.id,
            before=before,
            after={"status": payout.status, "failure_reason": None},
        )
    return SupplierPayoutOut.model_validate(payout)
