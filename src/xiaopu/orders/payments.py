"""Payments opened at the provider when the buyer asks, callbacks applied exactly once, refunds
through the provider, the sandbox pay step."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu import queue
from xiaopu.audit import service as audit
from xiaopu.commissions import service as commissions
from xiaopu.config import Environment, Settings
from xiaopu.db import unit_of_work
from xiaopu.errors import AppError, Conflict, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.models import (
    AuditAction,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundLine,
    RefundReason,
    RefundStatus,
    ReturnStatus,
    SupplierOrder,
    SupplierOrderStatus,
)
from xiaopu.orders import repository
from xiaopu.orders.events import order_event, supplier_order_event
from xiaopu.orders.providers import (
    CallbackKind,
    PaymentIntent,
    ProviderCallback,
    ProviderUnavailable,
    RefundOutcome,
    SandboxProvider,
    provider_for,
)
from xiaopu.orders.schemas import (
    CallbackResult,
    PaymentOut,
    RefundOut,
    SandboxPayResult,
    SignedCallback,
)
from xiaopu.orders.service import buyer_order, payment_out
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

log = structlog.get_logger(__name__)

REFUND_JOB = "orders.refund"
# A claim to open a payment lapses after this long: longer than any provider call takes (the
# request that claimed it has died, or given up), so the next ask calls the provider again.
OPEN_CLAIM = timedelta(seconds=30)


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    title = "No payment with this reference"


class PaymentMismatch(AppError):
    status = 422
    code = "payment_mismatch"
    title = "The callback's amount or currency differs from the order's"


class OrderNotPayable(Conflict):
    code = "order_not_payable"
    title = "The order is not waiting for payment"


class PaymentOpening(Conflict):
    code = "payment_opening"
    title = "The payment is being opened by another request; retry shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class OrderNotPaid(Conflict):
    code = "order_not_paid"
    title = "The order is not paid, so nothing of it can be refunded"


class SandboxDisabled(NotFound):
    code = "sandbox_disabled"
    title = "The sandbox payment provider is not available here"


# Opening a payment ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    order_id: uuid.UUID
    claimed_at: datetime
    provider: str
    provider_ref: str
    amount_minor: int
    currency: str
    expires_at: datetime


async def open_payment(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    order_id: uuid.UUID,
    account_id: uuid.UUID | None,
    access_token: str | None,
) -> PaymentOut:
    """The buyer asks to pay: the provider opens the order's payment, once however often they
    ask. Claim, commit, call, record: the claim commits in a unit of work of its own, so a
    concurrent ask is told to retry instead of calling too; the call runs outside any
    transaction; its answer is recorded in another unit of work, and every later ask is
    answered from the record. Should a request die between its claim and its record, the claim
    lapses and the next ask calls again, which the provider, idempotent on the reference,
    answers with the same payment."""
    async with unit_of_work(sessions) as session:
        claim = await _claim_opening(session, order_id, account_id, access_token)
    if not isinstance(claim, _Claim):
        return claim
    provider = provider_for(settings, claim.provider)
    try:
        intent = await provider.create_payment(
            claim.provider_ref, claim.amount_minor, claim.currency, claim.expires_at
        )
    except Exception as exc:
        # Nothing is opened that we know of: the next ask need not wait for the claim to lapse.
        async with unit_of_work(sessions) as session:
            await _give_up_claim(session, claim)
        if isinstance(exc, ProviderUnavailable):
            raise
        # A provider's own failure (a timeout, a refused connection, an answer it could not
        # read) is the same to the buyer: not opened, safe to ask again. Never a 500.
        log.warning("payment.open_failed", order_id=str(claim.order_id), error=repr(exc))
        raise ProviderUnavailable() from exc
    async with unit_of_work(sessions) as session:
        return await _record_opened(session, claim, intent)


async def _claim_opening(
    session: AsyncSession,
    order_id: uuid.UUID,
    account_id: uuid.UUID | None,
    access_token: str | None,
) -> PaymentOut | _Claim:
    """The payment as recorded when it was opened before; else a claim on opening it."""
    # Lock order, then payment: the order every other writer of both takes.
    order = await buyer_order(session, order_id, account_id, access_token, lock=True)
    if order.status is not OrderStatus.pending_payment:
        raise OrderNotPayable(extra={"current_status": str(order.status)})
    payment = await _payment_of(session, order.id)
    if payment.opened_at is not None:
        return payment_out(payment)
    now = utcnow()
    if payment.open_claimed_at is not None and now - payment.open_claimed_at < OPEN_CLAIM:
        raise PaymentOpening()
    payment.open_claimed_at = now
    await session.flush()
    return _Claim(
        order.id,
        now,
        payment.provider,
        payment.provider_ref,
        payment.amount_minor,
        payment.currency,
        order.expires_at,
    )


async def _give_up_claim(session: AsyncSession, claim: _Claim) -> None:
    payment = await _payment_of(session, claim.order_id)
    if payment.opened_at is None and payment.open_claimed_at == claim.claimed_at:
        payment.open_claimed_at = None
        await session.flush()


async def _record_opened(session: AsyncSession, claim: _Claim, intent: PaymentIntent) -> PaymentOut:
    payment = await _payment_of(session, claim.order_id)
    # A request whose claim lapsed mid-call may find another's answer recorded: the provider
    # gave both the same payment, and the first record stands.
    if payment.opened_at is None:
        payment.opened_at = utcnow()
        payment.pay_url = intent.pay_url
        await session.flush()
    return payment_out(payment)


async def _payment_of(session: AsyncSession, order_id: uuid.UUID) -> Payment:
    payment = await repository.payment_of(session, order_id)
    if payment is None:
        # Checkout writes an order and its payment in one statement.
        raise RuntimeError(f"order {order_id} has no payment")
    return payment


# Callbacks -----------------------------------------------------------------------------------


async def handle_callback(
    session: AsyncSession,
    settings: Settings,
    provider_name: str,
    headers: dict[str, str],
    body: bytes,
) -> CallbackResult:
    """Verify and apply a provider callback. A repeated event id applies nothing; concurrent
    repeats queue on the event id's unique key and then find it taken."""
    provider = provider_for(settings, provider_name)
    callback = provider.parse_callback(headers, body)
    callback_id = await repository.record_callback(
        session, provider.name, callback.event_id, str(callback.kind), utcnow()
    )
    if callback_id is None:
        return CallbackResult(outcome="duplicate")
    payment_id, outcome = await _apply(session, settings, provider.name, callback)
    await repository.set_callback_outcome(session, callback_id, payment_id, outcome)
    return CallbackResult(outcome=outcome)


async def _apply(
    session: AsyncSession, settings: Settings, provider: str, callback: ProviderCallback
) -> tuple[uuid.UUID | None, str]:
    if callback.kind is CallbackKind.refunded:
        return None, await _refund_confirmed(session, provider, callback)
    payment = await repository.payment_by_ref(session, provider, callback.payment_ref)
    if payment is None:
        raise PaymentNotFound()
    if callback.amount_minor != payment.amount_minor or callback.currency != payment.currency:
        raise PaymentMismatch(
            f"The order is {payment.amount_minor} {payment.currency}; the callback says "
            f"{callback.amount_minor} {callback.currency}."
        )
    # Lock order, then payment: the order every other writer of both takes.
    order = await repository.one(session, repository.any_orders(), payment.order_id, lock=True)
    if order is None:
        raise RuntimeError(f"payment {payment.id} has no order")  # a foreign key
    payment = await _payment_of(session, order.id)
    if callback.kind is CallbackKind.failed:
        if payment.status is PaymentStatus.paid:
            return payment.id, "ignored_already_paid"
        payment.status = PaymentStatus.failed
        payment.failure_reason = (callback.failure_reason or "declined")[:500]
        await session.flush()
        return payment.id, "payment_failed"
    if payment.status is PaymentStatus.paid:
        return payment.id, "already_paid"
    now = utcnow()
    payment.status = PaymentStatus.paid
    payment.paid_at = now
    if order.status is OrderStatus.expired:
        # The stock went back when it expired: the money goes back too.
        await _new_refund(
            session, order, None, payment, RefundReason.order_expired, order.total_minor
        )
        order.refunded_minor = order.total_minor
        await session.flush()
        return payment.id, "refunding_expired_order"
    order.status = OrderStatus.paid
    order.paid_at = now
    parts = await repository.supplier_orders_of(session, [order.id], lock=True)
    for part in parts:
        part.status = SupplierOrderStatus.paid
        part.paid_at = now
    await session.flush()
    await webhooks.emit(session, EventType.order_paid, order.shop_id, order_event(order))
    lines = await repository.lines_of_supplier_orders(session, [p.id for p in parts])
    await commissions.lock_for(session, parts)
    for part in parts:
        part_lines = [ln for ln in lines if ln.supplier_order_id == part.id]
        await commissions.accrue(session, settings, order, part, part_lines)
        await webhooks.emit(
            session,
            EventType.supplier_order_paid,
            part.supplier_id,
            supplier_order_event(part, part_lines),
        )
    return payment.id, "applied"


async def _refund_confirmed(
    session: AsyncSession, provider: str, callback: ProviderCallback
) -> str:
    """A provider telling us a refund we asked for went through (for asynchronous providers,
    or one that first refused): found by its reference among the payment's refunds, and
    checked for amount and currency like a payment."""
    payment = await repository.payment_by_ref(session, provider, callback.payment_ref)
    if payment is None or callback.refund_ref is None:
        raise PaymentNotFound("A refunded callback names a known payment and its refund.")
    refund = await repository.refund_by_ref(session, payment.order_id, callback.refund_ref)
    if refund is None:
        raise PaymentNotFound("Unknown refund reference.")
    if callback.amount_minor != refund.amount_minor or callback.currency != refund.currency:
        raise PaymentMismatch(
            f"The refund is {refund.amount_minor} {refund.currency}; the callback says "
            f"{callback.amount_minor} {callback.currency}."
        )
    if refund.status is RefundStatus.succeeded:
        return "already_refunded"
    await _refund_succeeded(session, refund, callback.refund_ref)
    return "refund_confirmed"


# Refunds -----------------------------------------------------------------------------------


async def _new_refund(
    session: AsyncSession,
    order: Order,
    part: SupplierOrder | None,
    payment: Payment,
    reason: RefundReason,
    amount_minor: int,
    *,
    shipping_minor: int = 0,
    lines: dict[uuid.UUID, tuple[int, int]] | None = None,
) -> Refund:
    """Record a refund and queue the provider call; `lines` maps line id → (units, amount)."""
    refund = Refund(
        order_id=order.id,
        supplier_order_id=part.id if part else None,
        payment_id=payment.id,
        reason=reason,
        amount_minor=amount_minor,
        shipping_minor=shipping_minor,
        currency=order.currency,
    )
    session.add(refund)
    await session.flush()
    for line_id, (quantity, amount) in (lines or {}).items():
        session.add(
            RefundLine(
                refund_id=refund.id, order_line_id=line_id, quantity=quantity, amount_minor=amount
            )
        )
    await session.flush()
    await queue.enqueue(session, REFUND_JOB, json.dumps({"refund_id": str(refund.id)}).encode())
    return refund


async def refund_part(
    session: AsyncSession,
    order: Order,
    part: SupplierOrder,
    reason: RefundReason,
    lines: dict[uuid.UUID, tuple[int, int]],
    shipping_minor: int,
) -> Refund:
    """Refund units of a supplier order's lines (and maybe its shipping), and reverse what was
    earned on them. Order, supplier order and lines are locked by the caller, and the lines
    already count the refunded units as returned."""
    amount = sum(a for _, a in lines.values()) + shipping_minor
    payment = await _payment_of(session, order.id)
    if payment.status is not PaymentStatus.paid:
        raise OrderNotPaid(extra={"payment_status": str(payment.status)})
    part.refunded_minor += amount
    order.refunded_minor += amount
    if shipping_minor:
        part.shipping_refunded = True
    refund = await _new_refund(
        session, order, part, payment, reason, amount, shipping_minor=shipping_minor, lines=lines
    )
    by_id = {ln.id: ln for ln in await repository.lines_of_supplier_orders(session, [part.id])}
    units = {line_id: (by_id[line_id], quantity) for line_id, (quantity, _) in lines.items()}
    await commissions.reverse(session, refund.id, part, units, shipping_minor)
    return refund


async def _refund_succeeded(session: AsyncSession, refund: Refund, provider_ref: str) -> None:
    refund.status = RefundStatus.succeeded
    # A provider callback may confirm a refund a job holds claimed: the job's record then finds
    # the claim gone and writes nothing.
    refund.claimed_at = None
    refund.provider_ref = provider_ref
    refund.succeeded_at = utcnow()
    for ret in await repository.returns_of_refund(session, refund.id):
        ret.status = ReturnStatus.refunded
    await session.flush()
    await webhooks.emit(
        session,
        EventType.refund_succeeded,
        await _refund_owner(session, refund),
        await refund_event(session, refund),
    )


async def _refund_owner(session: AsyncSession, refund: Refund) -> uuid.UUID:
    if refund.supplier_order_id is not None:
        part = await session.get(SupplierOrder, refund.supplier_order_id)
        if part is None:
            raise RuntimeError(f"refund {refund.id} has no supplier order")  # a foreign key
        return part.supplier_id
    order = await session.get(Order, refund.order_id)
    if order is None:
        raise RuntimeError(f"refund {refund.id} has no order")  # a foreign key
    return order.shop_id


async def refund_event(session: AsyncSession, refund: Refund) -> dict[str, Any]:
    rows = await repository.refund_line_rows(session, refund.id)
    order = await session.get(Order, refund.order_id)
    if order is None:
        raise RuntimeError(f"refund {refund.id} has no order")  # a foreign key
    return {
        "refund_id": str(refund.id),
        "order_id": str(refund.order_id),
        # For applications, which hear of every refund: whose shop, and which buyer to tell
        # (null for a guest), by id only.
        "shop_id": str(order.shop_id),
        "buyer_account_id": str(order.buyer_account_id) if order.buyer_account_id else None,
        "supplier_order_id": str(refund.supplier_order_id) if refund.supplier_order_id else None,
        "reason": str(refund.reason),
        "status": str(refund.status),
        "currency": refund.currency,
        "amount_minor": refund.amount_minor,
        "shipping_minor": refund.shipping_minor,
        "lines": [
            {
                "line_id": str(r.order_line_id),
                "quantity": r.quantity,
                "amount_minor": r.amount_minor,
            }
            for r in rows
        ],
    }


# Sending a refund: claim, commit, call, record ------------------------------------------------

# A refund job's claim lapses after this long: longer than any provider call takes, so a claim
# this old was left by a worker that died between its claim and its record. The next run of the
# job takes it over and asks the provider again, which refunds once per refund id.
REFUND_CLAIM = timedelta(minutes=2)


class RefundBeingSent(Conflict):
    """Raised by the refund job when another run holds a live claim on the refund: the worker
    retries the job later, by when the other run has recorded the refund or its claim lapsed."""

    code = "refund_being_sent"
    title = "Another run of the refund job is asking the provider for this refund"


@dataclass(frozen=True, slots=True)
class RefundClaim:
    """A refund as claimed for one provider call: what to ask, and the claim's time, which
    identifies the claim when its answer is recorded."""

    refund_id: uuid.UUID
    claimed_at: datetime
    provider: str
    payment_ref: str
    amount_minor: int
    currency: str
    taken_over: bool  # the refund was claimed before, by a run that died


async def claim_refund(
    session: AsyncSession, refund_id: uuid.UUID
) -> RefundClaim | RefundStatus | None:
    """Step 1: claim a pending refund for a provider call (the caller commits). Returns the
    refund's status instead if it is no longer pending, None if there is no such refund;
    raises RefundBeingSent if another run's claim is younger than REFUND_CLAIM."""
    refund = await repository.refund(session, refund_id, lock=True)
    if refund is None or refund.status is not RefundStatus.pending:
        return None if refund is None else refund.status
    now = utcnow()
    if refund.claimed_at is not None and now - refund.claimed_at < REFUND_CLAIM:
        raise RefundBeingSent(extra={"claimed_at": refund.claimed_at.isoformat()})
    payment = await session.get(Payment, refund.payment_id)
    if payment is None:
        raise RuntimeError(f"refund {refund.id} has no payment")  # a foreign key
    taken_over = refund.claimed_at is not None
    refund.claimed_at = now
    await session.flush()
    return RefundClaim(
        refund.id,
        now,
        payment.provider,
        payment.provider_ref,
        refund.amount_minor,
        refund.currency,
        taken_over,
    )


async def ask_provider(settings: Settings, claim: RefundClaim) -> RefundOutcome:
    """Step 2: ask the provider for the claimed refund. Never inside a transaction: the
    provider is idempotent on the refund id, so a claim taken over is simply asked again."""
    provider = provider_for(settings, claim.provider)
    return await provider.refund(
        claim.payment_ref, claim.refund_id, claim.amount_minor, claim.currency
    )


async def release_refund(session: AsyncSession, claim: RefundClaim) -> None:
    """Drop a claim whose provider call raised, if it is still ours: the next run of the job
    asks again at once instead of waiting for the claim to lapse."""
    refund = await repository.refund(session, claim.refund_id, lock=True)
    if refund is not None and refund.claimed_at == claim.claimed_at:
        refund.claimed_at = None
        await session.flush()


async def record_refund(session: AsyncSession, claim: RefundClaim, outcome: RefundOutcome) -> bool:
    """Step 3: record the provider's answer if the claim is still ours (the caller commits):
    succeeded (returns refunded, `refund.succeeded`) or failed (`refund.failed`). False, and
    nothing written, if the refund was recorded since or its claim was taken over: a run whose
    claim lapsed mid-call, or a provider callback, got there first."""
    refund = await repository.refund(session, claim.refund_id, lock=True)
    if refund is None or refund.claimed_at != claim.claimed_at:
        log.info("refund.already_recorded", refund_id=str(claim.refund_id))
        return False
    if outcome.succeeded:
        await _refund_succeeded(session, refund, outcome.provider_ref)
        return True
    refund.status = RefundStatus.failed
    refund.claimed_at = None
    refund.provider_ref = outcome.provider_ref
    refund.failure_reason = (outcome.failure_reason or "refused")[:500]
    await session.flush()
    await webhooks.emit(
        session,
        EventType.refund_failed,
        await _refund_owner(session, refund),
        await refund_event(session, refund),
    )
    return True


async def send_refund_in_steps(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, refund_id: uuid.UUID
) -> RefundStatus | None:
    """The refund job: claim, commit, call, record, each step in a unit of work of its own and
    the call outside any. A worker killed after its claim leaves the refund pending and
    claimed; the job, run again, takes the claim over once it lapses. Returns the refund's
    status as this run leaves it (None: no such refund)."""
    async with sessions() as session, session.begin():
        claim = await claim_refund(session, refund_id)
    if not isinstance(claim, RefundClaim):
        return claim
    if claim.taken_over:
        log.warning("refund.taking_over", refund_id=str(refund_id))
    try:
        outcome = await ask_provider(settings, claim)
    except Exception:
        async with sessions() as session, session.begin():
            await release_refund(session, claim)
        raise
    async with sessions() as session, session.begin():
        await record_refund(session, claim, outcome)
        refund = await repository.refund(session, refund_id)
        return None if refund is None else refund.status


async def send_refund(
    session: AsyncSession, settings: Settings, refund_id: uuid.UUID
) -> RefundStatus | None:
    """The refund job's steps on one session, inside the caller's transaction, provider call
    included: only for tests that run the job in a transaction of their own (a session bound
    to one connection, or a unit of work they commit). The worker runs send_refund_in_steps,
    which is what production must use. Returns the refund's status as it leaves it."""
    claim = await claim_refund(session, refund_id)
    if not isinstance(claim, RefundClaim):
        return claim
    await record_refund(session, claim, await ask_provider(settings, claim))
    refund = await repository.refund(session, refund_id)
    return None if refund is None else refund.status


class RefundNotFound(NotFound):
    code = "refund_not_found"
    title = "Refund not found"


class RefundNotRetryable(Conflict):
    code = "refund_not_retryable"
    title = "Only a failed refund can be retried"


async def retry_refund(
    session: AsyncSession, refund_id: uuid.UUID, *, operator_id: uuid.UUID | None = None
) -> RefundOut:
    """An operator sends a refund the provider refused once more. Its reversal stands: the
    buyer is owed the money until the provider pays it. Written to the audit log as
    `operator_id`'s (None: not an operator's request, e.g. a test's setup)."""
    refund = await repository.refund(session, refund_id, lock=True)
    if refund is None:
        raise RefundNotFound()
    if refund.status is not RefundStatus.failed:
        raise RefundNotRetryable(extra={"current_status": str(refund.status)})
    before = {"status": refund.status, "failure_reason": refund.failure_reason}
    refund.status = RefundStatus.pending
    refund.failure_reason = None
    await session.flush()
    await queue.enqueue(session, REFUND_JOB, json.dumps({"refund_id": str(refund.id)}).encode())
    if operator_id is not None:
        await audit.record(
            session,
            operator_id,
            AuditAction.refund_retry,
            "refund",
            refund.id,
            before=before,
            after={"status": refund.status, "failure_reason": None},
        )
    return RefundOut.model_validate(refund)


async def list_refunds(
    session: AsyncSession, status: RefundStatus | None, page: PageParams
) -> Page[RefundOut]:
    rows = await repository.page_of_refunds(session, status, page)
    items, cursor = id_page(rows, page, lambda r: r.id)
    return Page[RefundOut](items=[RefundOut.model_validate(r) for r in items], next_cursor=cursor)


# Sandbox -----------------------------------------------------------------------------------


async def sandbox_pay(
    session: AsyncSession, settings: Settings, provider_ref: str, outcome: str
) -> SandboxPayResult:
    """Play the buyer paying in the sandbox: it signs the callback a real provider would send
    and hands it to our callback handler, then shows both."""
    if settings.env is Environment.production or settings.payment_provider != SandboxProvider.name:
        raise SandboxDisabled()
    sandbox = SandboxProvider(settings)
    payment = await repository.payment_by_ref(session, sandbox.name, provider_ref)
    if payment is None:
        raise PaymentNotFound()
    kind = CallbackKind.paid if outcome == "paid" else CallbackKind.failed
    callback = sandbox.new_callback(
        kind,
        payment_ref=payment.provider_ref,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        failure_reason="sandbox: declined" if kind is CallbackKind.failed else None,
    )
    headers, body = sandbox.sign_callback(callback)
    result = await handle_callback(session, settings, sandbox.name, headers, body)
    return SandboxPayResult(
        callback=SignedCallback(headers=headers, body=body.decode()), result=result
    )
