"""The shopkeeper's wallet, withdrawals (checked against the available balance under a lock),
and payouts through the payout provider: claimed, asked outside any transaction, recorded; a
failed payout returns the funds. A partner organisation withdraws its override income the same
way: a withdrawal pays a shop or an organisation (its payee), from the payee's ledger accounts."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from xiaopu.audit import service as audit
from xiaopu.commissions import service as commissions
from xiaopu.config import Settings
from xiaopu.errors import AppError, Conflict, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.money import display
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models import AuditAction, PayoutBatch, Withdrawal, WithdrawalStatus
from xiaopu.models.ledger import PLATFORM_ID, OwnerKind, Purpose
from xiaopu.payouts import repository
from xiaopu.payouts.providers import (
    Payee,
    PayeeKind,
    PayoutOutcome,
    PayoutProvider,
    payout_provider,
)
from xiaopu.payouts.schemas import (
    BatchOut,
    PayoutRunQueued,
    QueuedPayouts,
    WalletBalance,
    WithdrawalIn,
    WithdrawalOut,
)
from xiaopu.queue import enqueue
from xiaopu.shops import service as shops
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

log = structlog.get_logger(__name__)

# The job that runs payouts: hourly on its schedule, and when an operator asks.
RUN_JOB = "payouts.run"


class BelowThreshold(AppError):
    status = 422
    code = "below_payout_threshold"
    title = "The amount is below the smallest withdrawal"


class InsufficientFunds(Conflict):
    code = "insufficient_funds"
    title = "The amount is above your available balance"


class NegativeBalance(Conflict):
    code = "negative_balance"
    title = "Withdrawals wait until later earnings cover a clawback"


class WithdrawalNotFound(NotFound):
    code = "withdrawal_not_found"
    title = "Withdrawal not found"


class NotRetryable(Conflict):
    code = "withdrawal_not_retryable"
    title = "Only a failed withdrawal can be retried"


async def wallet(session: AsyncSession, account_id: uuid.UUID) -> list[WalletBalance]:
    shop = await shops.shop_of(session, account_id)
    balances = await ledger.balances(session, OwnerKind.shop, shop.id)
    paid = await repository.paid_totals(session, Payee(PayeeKind.shop, shop.id))
    out = []
    for currency in sorted(balances.keys() | paid.keys()):
        by_purpose = balances.get(currency, {})
        # The platform owes earnings: they are credits, negative in the ledger's sign.
        available = -by_purpose.get(Purpose.earnings_available, 0)
        out.append(
            WalletBalance(
                currency=currency,
                pending_minor=-by_purpose.get(Purpose.earnings_pending, 0),
                held_minor=-by_purpose.get(Purpose.earnings_held, 0),
                available_minor=max(available, 0),
                withdrawing_minor=-by_purpose.get(Purpose.earnings_withdrawing, 0),
                paid_minor=paid.get(currency, 0),
                negative_carry_minor=max(-available, 0),
            )
        )
    return out


_OWNER_KINDS = {PayeeKind.shop: OwnerKind.shop, PayeeKind.organisation: OwnerKind.organisation}


def payee_of(withdrawal: Withdrawal) -> Payee:
    """Whom a withdrawal pays: its shop or its organisation (ck_withdrawals_one_payee)."""
    if withdrawal.shop_id is not None:
        return Payee(PayeeKind.shop, withdrawal.shop_id)
    if withdrawal.organisation_id is not None:
        return Payee(PayeeKind.organisation, withdrawal.organisation_id)
    raise RuntimeError(f"withdrawal {withdrawal.id} pays no one")


def _leg(payee: Payee, purpose: Purpose, amount: int) -> Leg:
    return Leg(_OWNER_KINDS[payee.kind], payee.id, purpose, amount)


async def _reserve(
    session: AsyncSession, settings: Settings, withdrawal: Withdrawal, cause: str
) -> None:
    """Check the funds under the available account's lock and move them to `withdrawing`."""
    amount, currency = withdrawal.amount_minor, withdrawal.currency
    threshold = settings.payout_threshold(currency)
    if amount < threshold:
        raise BelowThreshold(
            f"The smallest withdrawal is {display(threshold, currency)}.",
            extra={"threshold_minor": threshold, "currency": currency},
        )
    payee = payee_of(withdrawal)
    available = -await ledger.lock_balance(
        session, _OWNER_KINDS[payee.kind], payee.id, Purpose.earnings_available, currency
    )
    if available < 0:
        raise NegativeBalance(extra={"negative_carry_minor": -available})
    if amount > available:
        raise InsufficientFunds(
            f"{display(available, currency)} is available.", extra={"available_minor": available}
        )
    await ledger.post(
        session,
        kind="withdrawal",
        cause=cause,
        currency=currency,
        legs=[
            _leg(payee, Purpose.earnings_available, amount),
            _leg(payee, Purpose.earnings_withdrawing, -amount),
        ],
    )


async def request_withdrawal(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, data: WithdrawalIn
) -> WithdrawalOut:
    shop = await shops.shop_of(session, account_id)
    return await _request(session, settings, Payee(PayeeKind.shop, shop.id), data)


async def request_organisation_withdrawal(
    session: AsyncSession, settings: Settings, organisation_id: uuid.UUID, data: WithdrawalIn
) -> WithdrawalOut:
    """An organisation's withdrawal of its available override income; the caller has checked
    that an admin of the organisation asks."""
    return await _request(session, settings, Payee(PayeeKind.organisation, organisation_id), data)


async def _request(
    session: AsyncSession, settings: Settings, payee: Payee, data: WithdrawalIn
) -> WithdrawalOut:
    withdrawal = Withdrawal(
        id=new_id(),
        shop_id=payee.id if payee.kind is PayeeKind.shop else None,
        organisation_id=payee.id if payee.kind is PayeeKind.organisation else None,
        currency=data.currency,
        amount_minor=data.amount_minor,
        status=WithdrawalStatus.requested,
        attempts=0,
    )
    # Funds first, row second: inserting the row key-share-locks the shop (or organisation),
    # and the completion job locks the ledger accounts before the shop; taking them the other
    # way round deadlocks.
    await _reserve(session, settings, withdrawal, f"withdrawal:{withdrawal.id}:0")
    session.add(withdrawal)
    await session.flush()
    return WithdrawalOut.model_validate(withdrawal)


async def retry_withdrawal(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, withdrawal_id: uuid.UUID
) -> WithdrawalOut:
    shop = await shops.shop_of(session, account_id)
    return await _retry(session, settings, Payee(PayeeKind.shop, shop.id), withdrawal_id)


async def retry_organisation_withdrawal(
    session: AsyncSession,
    settings: Settings,
    organisation_id: uuid.UUID,
    withdrawal_id: uuid.UUID,
) -> WithdrawalOut:
    return await _retry(
        session, settings, Payee(PayeeKind.organisation, organisation_id), withdrawal_id
    )


async def _retry(
    session: AsyncSession, settings: Settings, payee: Payee, withdrawal_id: uuid.UUID
) -> WithdrawalOut:
    withdrawal = await repository.withdrawal(session, payee, withdrawal_id, lock=True)
    if withdrawal is None:
        raise WithdrawalNotFound()
    if withdrawal.status is not WithdrawalStatus.failed:
        raise NotRetryable(extra={"current_status": str(withdrawal.status)})
    await _reserve(
        session, settings, withdrawal, f"withdrawal:{withdrawal.id}:{withdrawal.attempts}"
    )
    withdrawal.status = WithdrawalStatus.requested
    withdrawal.failure_reason = None
    await session.flush()
    return WithdrawalOut.model_validate(withdrawal)


async def list_withdrawals(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[WithdrawalOut]:
    shop = await shops.shop_of(session, account_id)
    return await _list(session, Payee(PayeeKind.shop, shop.id), page)


async def list_organisation_withdrawals(
    session: AsyncSession, organisation_id: uuid.UUID, page: PageParams
) -> Page[WithdrawalOut]:
    return await _list(session, Payee(PayeeKind.organisation, organisation_id), page)


async def _list(session: AsyncSession, payee: Payee, page: PageParams) -> Page[WithdrawalOut]:
    rows = await repository.page_of_withdrawals(session, payee, page)
    items, cursor = id_page(rows, page, lambda w: w.id)
    return Page[WithdrawalOut](
        items=[WithdrawalOut.model_validate(w) for w in items], next_cursor=cursor
    )


def _event(withdrawal: Withdrawal) -> dict[str, object]:
    payee = payee_of(withdrawal)
    return {
        "withdrawal_id": str(withdrawal.id),
        # A shop's events say `shop_id`, as they always have; an organisation's, its own.
        f"{payee.kind}_id": str(payee.id),
        "currency": withdrawal.currency,
        "amount_minor": withdrawal.amount_minor,
        "status": str(withdrawal.status),
        "attempt": withdrawal.attempts,
        "failure_reason": withdrawal.failure_reason,
    }


async def queue_run(
    session: AsyncSession, *, operator_id: uuid.UUID | None = None
) -> PayoutRunQueued:
    """Queue a payout run for the worker, committed with the caller's unit of work, and say
    what is waiting for it. Several queued runs are harmless: each claims what no other holds.
    An operator's run is written to the audit log, with what it found waiting."""
    await enqueue(session, RUN_JOB, b"")
    totals = await repository.queue_totals(session)
    queued = PayoutRunQueued(
        job=RUN_JOB,
        queued=[
            QueuedPayouts(currency=currency, status=status, count=count, total_minor=total)
            for currency, status, count, total in totals
        ],
    )
    if operator_id is not None:
        await audit.record(
            session,
            operator_id,
            AuditAction.payout_run,
            "payout_run",
            None,
            after=queued.model_dump(mode="json"),
        )
    return queued


Step = Literal["claimed", "called", "recorded"]
StepHook = Callable[[Step], None]


@dataclass(frozen=True, slots=True)
class Claim:
    """One payout attempt as claimed: what the provider is asked, under which key."""

    withdrawal_id: uuid.UUID
    shop_id: uuid.UUID | None  # the payee: a shop, or
    currency: str
    amount_minor: int
    attempt: int
    key: str
    taken_over: bool  # claimed by a run that died before recording it
    organisation_id: uuid.UUID | None = None  # an organisation

    @property
    def payee(self) -> Payee:
        if self.shop_id is not None:
            return Payee(PayeeKind.shop, self.shop_id)
        if self.organisation_id is not None:
            return Payee(PayeeKind.organisation, self.organisation_id)
        raise RuntimeError(f"claim {self.key} pays no one")


@dataclass(frozen=True, slots=True)
class PayoutRun:
    batches: list[BatchOut]  # the batches this run claimed, as they stand after it
    taken_over: int  # claims of dead runs this run settled or tried to
    unsettled: int  # provider calls that raised: left claimed for a later run to look up


def _claim(withdrawal: Withdrawal, *, taken_over: bool) -> Claim:
    if withdrawal.payout_key is None:  # ck_withdrawals_claimed_has_key rules this out
        raise RuntimeError(f"claimed withdrawal {withdrawal.id} has no payout key")
    return Claim(
        withdrawal.id,
        withdrawal.shop_id,
        withdrawal.currency,
        withdrawal.amount_minor,
        withdrawal.attempts - 1,
        withdrawal.payout_key,
        taken_over,
        withdrawal.organisation_id,
    )


def _no_hook(_: Step) -> None:
    return None


async def run_payouts(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    provider: PayoutProvider | None = None,
    after_step: StepHook = _no_hook,
) -> PayoutRun:
    """Pay every waiting withdrawal. A state machine with a commit between its steps, so the
    provider is never called inside a transaction and a crash between any two steps pays
    nobody twice and loses nothing:

    1. claim: lock a chunk of `requested` withdrawals (SKIP LOCKED: two runs never claim one),
       mark them `processing` under a provider key `withdrawal:{id}:{attempt}`, commit;
    2. call: ask the provider, `payout_concurrency` at a time, with no transaction open;
    3. record: per withdrawal, `paid` (ledger, commission lines, `payout.paid`) or `failed`
       (funds back to available, `payout.failed`), commit.

    Claims older than `payout_claim_timeout_seconds` belong to a run that died: this run takes
    them over and asks the provider `lookup(key)` first, recording what it says or paying the
    key if the provider never received it. `sessions` may be bound to a single connection (as
    tests bind it); its steps then run one at a time.

    `after_step` is called after each step commits or answers (tests crash the run there)."""
    provider = provider or payout_provider(settings)
    claimed_before = utcnow() - timedelta(seconds=settings.payout_claim_timeout_seconds)
    taken_over = unsettled = 0
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session, session.begin():
            rows = await repository.abandoned(
                session, claimed_before, after, settings.payout_claim_size
            )
            now = utcnow()
            for withdrawal in rows:
                withdrawal.claimed_at = now
            claims = [_claim(w, taken_over=True) for w in rows]
        if not claims:
            break
        after = claims[-1].withdrawal_id
        log.warning("payouts.taking_over", count=len(claims))
        after_step("claimed")
        taken_over += len(claims)
        unsettled += await _settle(sessions, settings, provider, claims, after_step)

    batch_ids: list[uuid.UUID] = []
    while True:
        claims, new_batches = await _claim_waiting(sessions, settings)
        if not claims:
            break
        batch_ids += new_batches
        after_step("claimed")
        unsettled += await _settle(sessions, settings, provider, claims, after_step)

    async with sessions() as session:
        batches = [BatchOut.model_validate(b) for b in await repository.batches(session, batch_ids)]
    return PayoutRun(batches=batches, taken_over=taken_over, unsettled=unsettled)


async def _claim_waiting(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> tuple[list[Claim], list[uuid.UUID]]:
    """Claim a chunk of requested withdrawals, one batch per currency, and commit."""
    async with sessions() as session, session.begin():
        rows = await repository.waiting(session, settings.payout_claim_size)
        by_currency: dict[str, list[Withdrawal]] = defaultdict(list)
        for withdrawal in rows:
            by_currency[withdrawal.currency].append(withdrawal)
        batches = {
            currency: PayoutBatch(
                id=new_id(),
                currency=currency,
                item_count=len(items),
                total_minor=sum(w.amount_minor for w in items),
                paid_count=0,
                failed_count=0,
            )
            for currency, items in sorted(by_currency.items())
        }
        session.add_all(batches.values())
        # The batches before their withdrawals, which refer to them.
        await session.flush()
        now = utcnow()
        claims = []
        for currency, items in sorted(by_currency.items()):
            for w in items:
                w.batch_id = batches[currency].id
                w.payout_key = f"withdrawal:{w.id}:{w.attempts}"
                w.attempts += 1
                w.status = WithdrawalStatus.processing
                w.claimed_at = now
                w.failure_reason = None
                claims.append(_claim(w, taken_over=False))
        batch_ids = [b.id for b in batches.values()]
    return claims, batch_ids


async def _settle(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    provider: PayoutProvider,
    claims: list[Claim],
    after_step: StepHook,
) -> int:
    """Settle every claim, `payout_concurrency` at a time: ask the provider outside any
    transaction, then record its answer. Returns how many got no answer."""
    gate = asyncio.Semaphore(settings.payout_concurrency)
    # Sessions of one connection (tests join an outer transaction that way) cannot run side by
    # side, so their records take turns; a pool's records run in parallel, a shop's queued by
    # its payout lock.
    one_connection = isinstance(sessions.kw.get("bind"), AsyncConnection)
    recording = asyncio.Semaphore(1 if one_connection else settings.payout_concurrency)

    async def settle(claim: Claim) -> bool:
        async with gate:
            try:
                outcome = await provider.lookup(claim.key) if claim.taken_over else None
                if outcome is None:
                    outcome = await provider.pay(
                        claim.key, claim.payee, claim.amount_minor, claim.currency
                    )
            except Exception:
                # Unknown whether it was paid: the claim stays for a later run to look up.
                log.exception("payouts.provider_error", key=claim.key)
                return False
            after_step("called")
            async with recording:
                await record(sessions, claim, outcome)
            after_step("recorded")
            return True

    tasks = [asyncio.create_task(settle(claim)) for claim in claims]
    try:
        settled = await asyncio.gather(*tasks)
    finally:
        # A failed record (or a crash at a step) stops the others; their claims stay claimed.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return settled.count(False)


async def record(
    sessions: async_sessionmaker[AsyncSession], claim: Claim, outcome: PayoutOutcome
) -> bool:
    """Record the provider's answer for a claim and commit; False if another run recorded it
    first (a claim taken over while its first run was still alive)."""
    async with sessions() as session, session.begin():
        # First, before any other lock: a shop's payouts are recorded one at a time, so each
        # counts every payout committed before it when it marks commission lines paid.
        await repository.lock_payee(session, claim.payee, claim.currency)
        w = await repository.claimed(session, claim.withdrawal_id)
        if w is None or w.status is not WithdrawalStatus.processing or w.payout_key != claim.key:
            log.info("payouts.already_recorded", key=claim.key)
            return False
        if w.batch_id is None:  # set with the claim
            raise RuntimeError(f"claimed withdrawal {w.id} is in no batch")
        w.provider_ref = outcome.provider_ref
        attempt = claim.attempt
        payee = payee_of(w)
        if outcome.succeeded:
            w.status = WithdrawalStatus.paid
            w.paid_at = utcnow()
            await session.flush()
            cause, kind, event = f"payout:{w.id}:{attempt}", "payout", EventType.payout_paid
            if w.shop_id is not None:
                # Commission lines before accounts: the order refunds and completion take them
                # in. (An organisation's override lines have no paid state.)
                paid_out = (await repository.paid_totals(session, payee)).get(w.currency, 0)
                await commissions.mark_paid(session, w.shop_id, w.currency, paid_out, cause)
            legs = [
                _leg(payee, Purpose.earnings_withdrawing, w.amount_minor),
                Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, -w.amount_minor),
            ]
        else:
            w.status = WithdrawalStatus.failed
            w.failure_reason = (outcome.failure_reason or "refused")[:500]
            legs = [
                _leg(payee, Purpose.earnings_withdrawing, w.amount_minor),
                _leg(payee, Purpose.earnings_available, -w.amount_minor),
            ]
            cause, kind, event = (
                f"payout-failed:{w.id}:{attempt}",
                "payout_failed",
                EventType.payout_failed,
            )
        # The payee's available account before `withdrawing`, as withdrawals take them.
        await ledger.lock_balance(
            session, _OWNER_KINDS[payee.kind], payee.id, Purpose.earnings_available, w.currency
        )
        await ledger.post(session, kind=kind, cause=cause, currency=w.currency, legs=legs)
        await session.flush()
        await webhooks.emit(session, event, payee.id, _event(w))
        # Last: every record of a batch counts on its row, held from here to the commit.
        await repository.count_outcome(session, w.batch_id, paid=outcome.succeeded)
    return True
