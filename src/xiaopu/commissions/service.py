"""Commission lines and their postings: accrued on payment, released on completion, reversed on
a refund (a clawback once released or paid out); the shopkeeper's list of them. Also the money
of partner organisations' overrides: accrued at completion from the platform fee, reversed on a
refund (organisations keeps their terms, month counters and close)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.audit import service as audit
from xiaopu.commissions import events, repository
from xiaopu.commissions.schemas import CommissionHistoryOut, CommissionOut, HeldDecision
from xiaopu.commissions.split import (
    PLATFORM_FEE,
    PLATFORM_MARKUP,
    reversal,
    rounding_note,
    split_line,
)
from xiaopu.config import Settings
from xiaopu.errors import NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.money import apply_bps
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models import AuditAction, Order, OrderLine, Override, OverrideStatus, SupplierOrder
from xiaopu.models.ledger import (
    PLATFORM_ID,
    Beneficiary,
    Commission,
    CommissionAction,
    CommissionEvent,
    OwnerKind,
    PartKind,
    PartStatus,
    Purpose,
    Rule,
)
from xiaopu.organisations import overrides
from xiaopu.shops import service as shops
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

_OWNER_KIND = {
    Beneficiary.shop: OwnerKind.shop,
    Beneficiary.supplier: OwnerKind.supplier,
    Beneficiary.platform: OwnerKind.platform,
}
# Where a part's money sits, by beneficiary and status.
_PURPOSE = {
    (Beneficiary.shop, PartStatus.pending): Purpose.earnings_pending,
    (Beneficiary.shop, PartStatus.held): Purpose.earnings_held,
    (Beneficiary.shop, PartStatus.available): Purpose.earnings_available,
    # Paid-out earnings left `available` at payout; a clawback after it hits `available` too.
    (Beneficiary.shop, PartStatus.paid): Purpose.earnings_available,
    (Beneficiary.platform, PartStatus.pending): Purpose.fees_pending,
    (Beneficiary.platform, PartStatus.available): Purpose.fees,
    (Beneficiary.supplier, PartStatus.pending): Purpose.payable_pending,
    (Beneficiary.supplier, PartStatus.available): Purpose.payable,
}
# Who holds a refused hold's money, by the account it sits in (Commission.forfeited_to).
_FORFEIT_HOLDER = {
    Purpose.payable_pending: Beneficiary.supplier,
    Purpose.payable: Beneficiary.supplier,
    Purpose.fees_pending: Beneficiary.platform,
    Purpose.fees: Beneficiary.platform,
}


def _rule(settings: Settings, order: Order) -> Rule:
    if not order.self_purchase:
        return Rule.normal
    return {
        "earn": Rule.self_purchase_earn,
        "none": Rule.self_purchase_none,
        "hold": Rule.self_purchase_hold,
    }[settings.self_purchase_policy]


def _owner(row: Commission, beneficiary: Beneficiary) -> uuid.UUID:
    if beneficiary is Beneficiary.shop:
        return row.shop_id
    if beneficiary is Beneficiary.supplier:
        return row.supplier_id
    return PLATFORM_ID


def _leg(row: Commission, amount: int, status: PartStatus | None = None) -> Leg:
    purpose = _PURPOSE[(row.beneficiary, status or row.status)]
    return Leg(_OWNER_KIND[row.beneficiary], _owner(row, row.beneficiary), purpose, amount)


def _holder_leg(row: Commission, amount: int) -> Leg:
    """A leg on the account that holds this line's money now: its beneficiary's, by status, or
    once forfeited, whoever the operator's refusal sent it to."""
    if row.status is not PartStatus.forfeited:
        return _leg(row, amount)
    if row.forfeited_to is None:
        # Forfeited at accrual (policy `none`): its parts are 0, so nothing is ever taken back.
        raise ledger.UnbalancedPosting(f"commission {row.id} never held money to move")
    holder = _FORFEIT_HOLDER[row.forfeited_to]
    return Leg(_OWNER_KIND[holder], _owner(row, holder), row.forfeited_to, amount)


def _clearing(amount: int) -> Leg:
    return Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, amount)


def _history(
    row: Commission, action: CommissionAction, amount: int, cause: str, at: datetime
) -> CommissionEvent:
    return CommissionEvent(
        commission_id=row.id,
        supplier_id=row.supplier_id,
        action=action,
        status=row.status,
        amount_minor=amount,
        cause=cause,
        at=at,
    )


async def accrue(
    session: AsyncSession,
    settings: Settings,
    order: Order,
    part: SupplierOrder,
    lines: Sequence[OrderLine],
) -> None:
    """On payment: one commission line per part of each order line (and the shipping), and one
    balanced posting that credits each beneficiary what the buyer paid for them."""
    cause = f"accrual:{part.id}"
    if await repository.has_lines(session, part.id):
        return  # a replayed payment posts nothing
    rule = _rule(settings, order)
    now = utcnow()
    rows: list[Commission] = []
    for line in lines:
        parts = split_line(
            line.base_minor,
            line.markup_minor,
            line.commission_bps,
            line.platform_fee_bps,
            rule,
            line.boost_bps,
        )
        for (beneficiary, kind), amount in parts.items():
            if (beneficiary, kind) == PLATFORM_MARKUP and rule is not Rule.self_purchase_none:
                continue  # only the `none` policy sends markup to the platform
            if kind is PartKind.boost and not line.boost_bps:
                continue  # a line sold at a campaign's terms with a boost has its own part
            status = PartStatus.pending
            if beneficiary is Beneficiary.shop and rule is Rule.self_purchase_hold:
                status = PartStatus.held
            elif beneficiary is Beneficiary.shop and rule is Rule.self_purchase_none:
                status = PartStatus.forfeited
            rate = {
                PartKind.commission: line.commission_bps,
                PartKind.boost: line.boost_bps,
                PartKind.platform_fee: line.platform_fee_bps,
            }.get(kind)
            base = line.markup_minor if kind is PartKind.markup else line.base_minor
            rows.append(
                Commission(
                    order_id=order.id,
                    supplier_order_id=part.id,
                    order_line_id=line.id,
                    shop_id=order.shop_id,
                    supplier_id=part.supplier_id,
                    beneficiary=beneficiary,
                    kind=kind,
                    currency=line.currency,
                    base_minor=base,
                    rate_bps=rate,
                    rule=rule,
                    rounding=rounding_note(base, rate) if rate is not None else "exact",
                    accrued_minor=amount,
                    reversed_minor=0,
                    status=status,
                )
            )
    if part.shipping_minor:
        rows.append(
            Commission(
                order_id=order.id,
                supplier_order_id=part.id,
                order_line_id=None,
                shop_id=order.shop_id,
                supplier_id=part.supplier_id,
                beneficiary=Beneficiary.supplier,
                kind=PartKind.shipping,
                currency=part.currency,
                base_minor=part.shipping_minor,
                rate_bps=None,
                rule=rule,
                rounding="exact",
                accrued_minor=part.shipping_minor,
                reversed_minor=0,
                status=PartStatus.pending,
            )
        )
    await repository.add(session, rows)
    legs = [_clearing(sum(r.accrued_minor for r in rows))]
    legs += [_leg(r, -r.accrued_minor) for r in rows if r.status is not PartStatus.forfeited]
    await ledger.post(session, kind="accrual", cause=cause, currency=part.currency, legs=legs)
    session.add_all(
        _history(r, CommissionAction.accrued, r.accrued_minor, cause, now) for r in rows
    )
    await session.flush()
    earning = [
        r
        for r in rows
        if r.beneficiary is Beneficiary.shop and r.status is not PartStatus.forfeited
    ]
    if sum(r.accrued_minor for r in earning) > 0:
        data = events.accrued(
            shop_id=order.shop_id,
            order_id=order.id,
            supplier_order_id=part.id,
            currency=part.currency,
            commission_minor=sum(r.accrued_minor for r in earning if r.kind is PartKind.commission),
            boost_minor=sum(r.accrued_minor for r in earning if r.kind is PartKind.boost),
            markup_minor=sum(r.accrued_minor for r in earning if r.kind is PartKind.markup),
            held=any(r.status is PartStatus.held for r in earning),
        )
        await webhooks.emit(session, EventType.commission_accrued, order.shop_id, data)


def _keys(shop_id: uuid.UUID, supplier_id: uuid.UUID, currency: str) -> list[ledger.AccountKey]:
    """Every counted account an order's postings can touch for this shop and supplier."""
    return [
        (OwnerKind.shop, shop_id, Purpose.earnings_pending, currency),
        (OwnerKind.shop, shop_id, Purpose.earnings_held, currency),
        (OwnerKind.shop, shop_id, Purpose.earnings_available, currency),
        (OwnerKind.supplier, supplier_id, Purpose.payable_pending, currency),
        (OwnerKind.supplier, supplier_id, Purpose.payable, currency),
    ]


async def lock_for(
    session: AsyncSession, parts: Sequence[SupplierOrder], *, completion: bool = False
) -> None:
    """Lock, in one global order, the accounts that postings for these supplier orders touch:
    call it before posting for several of them in one transaction. For a completion, the
    accounts of the shops' organisations too (their overrides accrue with it)."""
    keys = [k for p in parts for k in _keys(p.shop_id, p.supplier_id, p.currency)]
    if completion:
        terms = await overrides.terms_for(session, sorted({p.shop_id for p in parts}))
        keys += [
            k
            for t in {terms[p.shop_id] for p in parts if p.shop_id in terms}
            for k in overrides.account_keys(t.organisation_id, t.currency)
        ]
    await ledger.lock_accounts(session, keys)


class OverrideMonthClosed(Exception):
    """A completion that started before a local midnight met its month already closed: it
    rolls back, and the next run completes the batch in the new month."""


async def release(session: AsyncSession, parts: Sequence[SupplierOrder], zone: ZoneInfo) -> int:
    """On completion: the pending parts of these supplier orders become available to the shop,
    payable to the supplier and earned by the platform, and so does the money of holds an
    operator refused before completion (now the supplier's and the platform's). Held parts
    wait for an operator. Returns how many lines moved.

    The batch is one journal posting per currency (cause `completion:{batch}`), netted per
    account: a completion run releases thousands of supplier orders, and a transaction each
    would write six entries per supplier order. Each line still records its own release
    (`completion:{supplier_order}`) in its history, and the status change (pending to
    available, in the same database transaction) is what makes a release happen once."""
    moved = await repository.release_pending(session, [p.id for p in parts], utcnow())
    batch = new_id()
    legs: dict[str, list[Leg]] = defaultdict(list)
    lines = 0
    available: list[tuple[uuid.UUID, dict[str, object]]] = []
    for row in moved:
        if row.part is not None:
            if row.amount > 0:
                data = events.available(
                    shop_id=row.owner_id,
                    order_id=row.order_id,
                    supplier_order_id=row.part,
                    currency=row.currency,
                    amount_minor=row.amount,
                    cause="completion",
                )
                available.append((row.owner_id, data))
            continue
        beneficiary = Beneficiary(row.beneficiary)
        kind = _OWNER_KIND[beneficiary]
        legs[row.currency] += [
            Leg(kind, row.owner_id, _PURPOSE[(beneficiary, PartStatus.pending)], row.amount),
            Leg(kind, row.owner_id, _PURPOSE[(beneficiary, PartStatus.available)], -row.amount),
        ]
        lines += row.lines
    postings = [
        ledger.Posting(f"completion:{batch}:{currency}", currency, currency_legs)
        for currency, currency_legs in sorted(legs.items())
    ]
    await ledger.post_many(session, kind="completion", postings=postings)
    # One event per supplier order whose shop earnings became available (its lines summed): the
    # shop's notification is about an order, and a batch writes them in one statement.
    await webhooks.emit_many(session, EventType.commission_available, available)
    await _accrue_overrides(session, parts, zone)
    return lines


async def _accrue_overrides(
    session: AsyncSession, parts: Sequence[SupplierOrder], zone: ZoneInfo
) -> None:
    """Each completed line of a cohort shop's sale in its organisation's contract currency earns
    the organisation override_bps of the line's platform fee for the units kept, half-up:
    (fee × bps + 5000) // 10000, as much of it as the month's cap leaves room for. Pending until
    the month closes. Paid by the platform out of its fee: `fees` → the organisation's
    `earnings_pending`, one posting per supplier order (`override:{supplier_order}`).

    One level only: the override is computed from the shop's sale's platform fee and nothing
    else; an organisation's override income earns no one anything."""
    now = utcnow()
    terms = await overrides.terms_for(session, sorted({p.shop_id for p in parts}))
    earning = [p for p in parts if p.shop_id in terms and terms[p.shop_id].currency == p.currency]
    if not earning:
        return
    month = overrides.month_of(now, zone)
    orgs = {terms[p.shop_id] for p in earning}
    await ledger.lock_accounts(
        session, [k for t in orgs for k in overrides.account_keys(t.organisation_id, t.currency)]
    )
    months = await overrides.lock_months(
        session, [(t.organisation_id, month, t.currency) for t in orgs]
    )
    if any(m.closed_at is not None for m in months.values()):
        raise OverrideMonthClosed(f"{month:%Y-%m}")
    rows: list[Override] = []
    by_part: dict[uuid.UUID, tuple[uuid.UUID, str, int]] = {}
    for fee in await repository.kept_fees(session, [p.id for p in earning]):
        t = terms[fee.shop_id]
        counter = months[(t.organisation_id, month, t.currency)]
        room = max(0, t.monthly_cap_minor - counter.accrued_minor)
        amount = min(apply_bps(int(fee.fee), t.override_bps), room)
        counter.accrued_minor += amount
        rows.append(
            Override(
                organisation_id=t.organisation_id,
                shop_id=fee.shop_id,
                order_id=fee.order_id,
                supplier_order_id=fee.supplier_order_id,
                order_line_id=fee.order_line_id,
                month=month,
                currency=fee.currency,
                fee_minor=int(fee.fee),
                rate_bps=t.override_bps,
                accrued_minor=amount,
                reversed_minor=0,
                clawed_back_minor=0,
                status=OverrideStatus.pending,
            )
        )
        org, currency, total = by_part.get(
            fee.supplier_order_id, (t.organisation_id, t.currency, 0)
        )
        by_part[fee.supplier_order_id] = (org, currency, total + amount)
    overrides.record(session, rows)
    await ledger.post_many(
        session,
        kind="override",
        postings=[
            ledger.Posting(
                f"override:{part_id}",
                currency,
                [
                    Leg(OwnerKind.platform, PLATFORM_ID, Purpose.fees, amount),
                    Leg(OwnerKind.organisation, org, Purpose.earnings_pending, -amount),
                ],
            )
            for part_id, (org, currency, amount) in sorted(by_part.items())
        ],
    )
    await session.flush()


async def reverse(
    session: AsyncSession,
    refund_id: uuid.UUID,
    part: SupplierOrder,
    units: dict[uuid.UUID, tuple[OrderLine, int]],
    shipping_minor: int,
) -> None:
    """On a refund of `units` (line id -> (line, units refunded)) and maybe the shipping: take
    back f(old base) − f(new base) of each part, from wherever that part's money now sits: a
    reversal while pending or held, a clawback once available or paid out (the shop's balance
    may go negative). Lines must already count the refunded units as returned."""
    earned = await overrides.of_supplier_order(session, part.id)
    if earned:
        # The organisation's accounts with the order's, in the one global order, before the
        # lines and the month counter: completion and month close take them in that order too.
        keys = _keys(part.shop_id, part.supplier_id, part.currency)
        for org in sorted({o.organisation_id for o in earned}):
            keys += overrides.account_keys(org, part.currency)
        await ledger.lock_accounts(session, keys)
    rows = await repository.of_supplier_order(session, part.id, lock=True)
    if not rows:
        return  # nothing was accrued (the order was never paid)
    cause = f"refund:{refund_id}"
    now = utcnow()
    by_part = {(r.order_line_id, r.beneficiary, r.kind): r for r in rows}
    legs: list[Leg] = []
    # The shop's part of it, for its event (a forfeited line's money is no longer the shop's).
    shop_taken = 0
    clawback = False
    for line_id, (line, refunded) in units.items():
        after = line.quantity - line.returned_quantity
        taken = reversal(
            line.unit_price_minor,
            line.unit_markup_minor,
            after + refunded,
            after,
            line.commission_bps,
            line.platform_fee_bps,
            rows[0].rule,
            line.boost_bps,
        )
        for (beneficiary, kind), amount in taken.items():
            row = by_part.get((line_id, beneficiary, kind))
            if row is None or amount == 0:
                continue
            row.reversed_minor += amount
            legs.append(_holder_leg(row, amount))
            session.add(_history(row, CommissionAction.reversed, amount, cause, now))
            if row.beneficiary is Beneficiary.shop and row.status is not PartStatus.forfeited:
                shop_taken += amount
                clawback = clawback or row.status in (PartStatus.available, PartStatus.paid)
    if shipping_minor:
        row = by_part.get((None, Beneficiary.supplier, PartKind.shipping))
        if row is not None:
            row.reversed_minor += shipping_minor
            legs.append(_leg(row, shipping_minor))
            session.add(_history(row, CommissionAction.reversed, shipping_minor, cause, now))
    # The buyer gets back exactly what the parts give up: they always add up to the refund.
    refunded = sum(
        (line.unit_price_minor + line.unit_markup_minor) * n for line, n in units.values()
    )
    if sum(leg.amount_minor for leg in legs) != refunded + shipping_minor:
        raise ledger.UnbalancedPosting(f"{cause}: the parts do not add up to the refund")
    legs.append(_clearing(-(refunded + shipping_minor)))
    await ledger.post(
        session,
        kind="refund",
        cause=cause,
        currency=part.currency,
        legs=legs,
        reverses_id=await ledger.transaction_for(session, f"accrual:{part.id}"),
    )
    await session.flush()
    if earned:
        await _reverse_overrides(session, refund_id, part, units, rows[0].rule)
    if shop_taken > 0:
        data = events.reversed_(
            shop_id=part.shop_id,
            order_id=part.order_id,
            supplier_order_id=part.id,
            currency=part.currency,
            amount_minor=shop_taken,
            cause="refund",
            refund_id=refund_id,
            clawback=clawback,
        )
        await webhooks.emit(session, EventType.commission_reversed, part.shop_id, data)


async def _reverse_overrides(
    session: AsyncSession,
    refund_id: uuid.UUID,
    part: SupplierOrder,
    units: dict[uuid.UUID, tuple[OrderLine, int]],
    rule: Rule,
) -> None:
    """A refund after completion takes back f(old) − f(new) of each line's override, where
    f(units) = (fee(units) × rate_bps + 5000) // 10000 and fee(units) is the line's platform fee
    for those kept units (split_line), never more than the line still holds (the cap may have
    cut its accrual). From wherever the money sits: pending, or available (a clawback, which may
    leave the organisation's balance negative); a line returned to the platform at its month's
    close has nothing left to move. The month counter goes down as much: room under the cap."""
    rows = {
        o.order_line_id: o for o in await overrides.of_supplier_order(session, part.id, lock=True)
    }
    taken: dict[Override, int] = {}
    for line_id, (line, refunded) in units.items():
        row = rows.get(line_id)
        if row is None or row.status is OverrideStatus.returned:
            continue
        after = line.quantity - line.returned_quantity

        def f(kept: int, line: OrderLine = line, row: Override = row) -> int:
            fee = split_line(
                line.unit_price_minor * kept,
                line.unit_markup_minor * kept,
                line.commission_bps,
                line.platform_fee_bps,
                rule,
                line.boost_bps,
            )[PLATFORM_FEE]
            return apply_bps(fee, row.rate_bps)

        amount = min(f(after + refunded) - f(after), row.accrued_minor - row.reversed_minor)
        if amount > 0:
            taken[row] = amount
    if not taken:
        return
    months = await overrides.lock_months(
        session, sorted({(r.organisation_id, r.month, r.currency) for r in taken})
    )
    legs: list[Leg] = []
    for row, amount in taken.items():
        row.reversed_minor += amount
        purpose = Purpose.earnings_pending
        if row.status is OverrideStatus.available:
            row.clawed_back_minor += amount
            purpose = Purpose.earnings_available
        months[(row.organisation_id, row.month, row.currency)].accrued_minor -= amount
        legs += [
            Leg(OwnerKind.organisation, row.organisation_id, purpose, amount),
            Leg(OwnerKind.platform, PLATFORM_ID, Purpose.fees, -amount),
        ]
    await ledger.post(
        session,
        kind="override_refund",
        cause=f"override-refund:{refund_id}",
        currency=part.currency,
        legs=legs,
        reverses_id=await ledger.transaction_for(session, f"override:{part.id}"),
    )
    await session.flush()


async def mark_paid(
    session: AsyncSession, shop_id: uuid.UUID, currency: str, paid_out: int, cause: str
) -> int:
    """After a payout: the shop's available lines, oldest first, become `paid` while everything
    paid out so far (`paid_out`, all payouts in this currency) covers them. A line is paid
    whole or not yet. Returns how many lines were marked."""
    budget = paid_out - await repository.paid_net(session, shop_id, currency)
    now = utcnow()
    marked = 0
    for row in await repository.oldest_available(session, shop_id, currency, limit=10_000):
        net = row.accrued_minor - row.reversed_minor
        if net > budget:
            break
        budget -= net
        row.status = PartStatus.paid
        session.add(_history(row, CommissionAction.paid, net, cause, now))
        marked += 1
    await session.flush()
    return marked


class NothingHeld(NotFound):
    code = "nothing_held"
    title = "This supplier order has no held earnings"


async def decide_held(
    session: AsyncSession,
    supplier_order_id: uuid.UUID,
    data: HeldDecision,
    *,
    operator_id: uuid.UUID | None = None,
) -> list[CommissionOut]:
    """An operator's decision on a self-purchase held for review: release the shop's earnings
    (pending until completion, available after), or forfeit them (the commission back to the
    supplier, the markup to the platform, at the same stage), wherever the order is in its
    life. A forfeited line records the account its money went to: a later refund takes it
    back from there, and completion moves it on to the available stage. Written to the audit
    log as `operator_id`'s (None: not an operator's request, e.g. a test's setup)."""
    await repository.lock_supplier_order(session, supplier_order_id)
    rows = await repository.of_supplier_order(session, supplier_order_id, lock=True)
    held = [r for r in rows if r.status is PartStatus.held]
    if not held:
        raise NothingHeld()
    completed = any(
        r.beneficiary is Beneficiary.supplier and r.status is PartStatus.available for r in rows
    )
    stage = PartStatus.available if completed else PartStatus.pending
    before = _held_state(held)
    cause = f"held-{data.decision}:{supplier_order_id}"
    now = utcnow()
    legs: list[Leg] = []
    for row in held:
        remaining = row.accrued_minor - row.reversed_minor
        legs.append(_leg(row, remaining))  # out of `held`
        if data.decision == "release":
            row.status = stage
            action = CommissionAction.held_released
        else:
            # The commission and a campaign's boost come from the supplier's share: back to it.
            supplier_funded = row.kind in (PartKind.commission, PartKind.boost)
            to = Beneficiary.supplier if supplier_funded else Beneficiary.platform
            row.status = PartStatus.forfeited
            row.forfeited_to = _PURPOSE[(to, stage)]
            action = CommissionAction.forfeited
        legs.append(_holder_leg(row, -remaining))  # into where the decision put it
        session.add(_history(row, action, remaining, cause, now))
    await ledger.post(
        session, kind="held_decision", cause=cause, currency=held[0].currency, legs=legs
    )
    await session.flush()
    await _emit_held_decision(session, held, data.decision, stage)
    if operator_id is not None:
        await audit.record(
            session,
            operator_id,
            AuditAction.commission_held_release
            if data.decision == "release"
            else AuditAction.commission_held_forfeit,
            "supplier_order",
            supplier_order_id,
            before=before,
            after=_held_state(held),
        )
    history = await repository.history(session, [r.id for r in held])
    return [_out(r, history) for r in held]


async def _emit_held_decision(
    session: AsyncSession, held: Sequence[Commission], decision: str, stage: PartStatus
) -> None:
    """The shop hears of a decision that changes what it can withdraw: a release after
    completion (commission.available) or a forfeit (commission.reversed). A release before
    completion says nothing yet: the completion's commission.available will."""
    amount = sum(r.accrued_minor - r.reversed_minor for r in held)
    if not held or amount <= 0:
        return
    row = held[0]  # one supplier order's lines: one shop, order and currency
    if decision == "release":
        if stage is not PartStatus.available:
            return
        event = EventType.commission_available
        data = events.available(
            shop_id=row.shop_id,
            order_id=row.order_id,
            supplier_order_id=row.supplier_order_id,
            currency=row.currency,
            amount_minor=amount,
            cause="held_released",
        )
    else:
        event = EventType.commission_reversed
        data = events.reversed_(
            shop_id=row.shop_id,
            order_id=row.order_id,
            supplier_order_id=row.supplier_order_id,
            currency=row.currency,
            amount_minor=amount,
            cause="forfeited",
            refund_id=None,
            clawback=False,
        )
    await webhooks.emit(session, event, row.shop_id, data)


def _held_state(rows: Sequence[Commission]) -> dict[str, object]:
    """What the audit log keeps of a held decision's lines: each one's status and amount."""
    return {
        "commissions": [
            {
                "id": r.id,
                "kind": r.kind,
                "status": r.status,
                "amount_minor": r.accrued_minor - r.reversed_minor,
                "currency": r.currency,
                "forfeited_to": r.forfeited_to,
            }
            for r in rows
        ]
    }


async def list_held(session: AsyncSession, page: PageParams) -> Page[CommissionOut]:
    rows = await repository.page_held(session, page)
    items, cursor = id_page(rows, page, lambda r: r.id)
    history = await repository.history(session, [r.id for r in items])
    return Page[CommissionOut](items=[_out(r, history) for r in items], next_cursor=cursor)


# Reading: the shopkeeper's wallet and commission lines ---------------------------------------


async def list_for_shop(
    session: AsyncSession,
    account_id: uuid.UUID,
    status: PartStatus | None,
    since: datetime | None,
    until: datetime | None,
    page: PageParams,
) -> Page[CommissionOut]:
    shop = await shops.shop_of(session, account_id)
    rows = await repository.page_for_shop(session, shop.id, status, since, until, page)
    items, cursor = id_page(rows, page, lambda r: r.id)
    history = await repository.history(session, [r.id for r in items])
    return Page[CommissionOut](items=[_out(r, history) for r in items], next_cursor=cursor)


def _out(r: Commission, history: dict[uuid.UUID, list[CommissionEvent]]) -> CommissionOut:
    return CommissionOut(
        id=r.id,
        order_id=r.order_id,
        supplier_order_id=r.supplier_order_id,
        order_line_id=r.order_line_id,
        kind=r.kind,
        currency=r.currency,
        base_minor=r.base_minor,
        rate_bps=r.rate_bps,
        rule=r.rule,
        rounding=r.rounding,
        accrued_minor=r.accrued_minor,
        reversed_minor=r.reversed_minor,
        net_minor=r.accrued_minor - r.reversed_minor,
        status=r.status,
        created_at=r.created_at,
        history=[
            CommissionHistoryOut(
                action=h.action,
                status=h.status,
                amount_minor=h.amount_minor,
                cause=h.cause,
                at=h.at,
            )
            for h in history.get(r.id, [])
        ],
    )
