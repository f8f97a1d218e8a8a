"""The shopkeeper's wallet, withdrawals (checked against the available balance under a lock),
and payout batches through the payout provider; a failed payout returns the funds."""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.commissions import service as commissions
from xiaopu.config import Settings
from xiaopu.errors import AppError, Conflict, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models import PayoutBatch, Withdrawal, WithdrawalStatus
from xiaopu.models.ledger import PLATFORM_ID, OwnerKind, Purpose
from xiaopu.payouts import repository
from xiaopu.payouts.providers import Payee, PayeeKind, PayoutProvider, payout_provider
from xiaopu.payouts.schemas import BatchOut, WalletBalance, WithdrawalIn, WithdrawalOut
from xiaopu.shops import service as shops
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

BATCH_SIZE = 500


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
    paid = await repository.paid_totals(session, shop.id)
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


def _shop(shop_id: uuid.UUID, purpose: Purpose, amount: int) -> Leg:
    return Leg(OwnerKind.shop, shop_id, purpose, amount)


async def _reserve(
    session: AsyncSession, settings: Settings, withdrawal: Withdrawal, cause: str
) -> None:
    """Check the funds under the available account's lock and move them to `withdrawing`."""
    amount, currency = withdrawal.amount_minor, withdrawal.currency
    if amount < settings.payout_threshold_minor:
        raise BelowThreshold(
            f"The smallest withdrawal is {settings.payout_threshold_minor} minor units.",
            extra={"threshold_minor": settings.payout_threshold_minor},
        )
    available = -await ledger.lock_balance(
        session, OwnerKind.shop, withdrawal.shop_id, Purpose.earnings_available, currency
    )
    if available < 0:
        raise NegativeBalance(extra={"negative_carry_minor": -available})
    if amount > available:
        raise InsufficientFunds(
            f"{available} {currency} is available.", extra={"available_minor": available}
        )
    await ledger.post(
        session,
        kind="withdrawal",
        cause=cause,
        currency=currency,
        legs=[
            _shop(withdrawal.shop_id, Purpose.earnings_available, amount),
            _shop(withdrawal.shop_id, Purpose.earnings_withdrawing, -amount),
        ],
    )


async def request_withdrawal(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, data: WithdrawalIn
) -> WithdrawalOut:
    shop = await shops.shop_of(session, account_id)
    withdrawal = Withdrawal(
        id=new_id(),
        shop_id=shop.id,
        currency=data.currency,
        amount_minor=data.amount_minor,
        status=WithdrawalStatus.requested,
        attempts=0,
    )
    # Funds first, row second: inserting the row key-share-locks the shop, and the completion
    # job locks the ledger accounts before the shop; taking them the other way round deadlocks.
    await _reserve(session, settings, withdrawal, f"withdrawal:{withdrawal.id}:0")
    session.add(withdrawal)
    await session.flush()
    return WithdrawalOut.model_validate(withdrawal)


async def retry_withdrawal(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, withdrawal_id: uuid.UUID
) -> WithdrawalOut:
    shop = await shops.shop_of(session, account_id)
    withdrawal = await repository.withdrawal(session, shop.id, withdrawal_id, lock=True)
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
    rows = await repository.page_of_withdrawals(session, shop.id, page)
    items, cursor = id_page(rows, page, lambda w: w.id)
    return Page[WithdrawalOut](
        items=[WithdrawalOut.model_validate(w) for w in items], next_cursor=cursor
    )


def _event(withdrawal: Withdrawal) -> dict[str, object]:
    return {
        "withdrawal_id": str(withdrawal.id),
        "shop_id": str(withdrawal.shop_id),
        "currency": withdrawal.currency,
        "amount_minor": withdrawal.amount_minor,
        "status": str(withdrawal.status),
        "attempt": withdrawal.attempts,
        "failure_reason": withdrawal.failure_reason,
    }


async def run_batches(session: AsyncSession, settings: Settings) -> list[BatchOut]:
    """Pay the waiting withdrawals, one batch per currency. Each payout is asked of the
    provider with (withdrawal, attempt) as its idempotency key, so a crashed batch that runs
    again pays nobody twice."""
    waiting = await repository.waiting(session, BATCH_SIZE)
    by_currency: dict[str, list[Withdrawal]] = defaultdict(list)
    for withdrawal in waiting:
        by_currency[withdrawal.currency].append(withdrawal)
    provider = payout_provider(settings)
    batches = []
    for currency, items in sorted(by_currency.items()):
        batch = PayoutBatch(
            currency=currency, item_count=len(items), total_minor=sum(w.amount_minor for w in items)
        )
        session.add(batch)
        await session.flush()
        for withdrawal in items:
            await _pay(session, provider, batch, withdrawal)
        batch.completed_at = utcnow()
        await session.flush()
        batches.append(BatchOut.model_validate(batch))
    return batches


async def _pay(
    session: AsyncSession, provider: PayoutProvider, batch: PayoutBatch, w: Withdrawal
) -> None:
    attempt = w.attempts
    w.batch_id = batch.id
    w.attempts += 1
    outcome = await provider.pay(
        f"withdrawal:{w.id}:{attempt}", Payee(PayeeKind.shop, w.shop_id), w.amount_minor, w.currency
    )
    w.provider_ref = outcome.provider_ref
    if outcome.succeeded:
        w.status = WithdrawalStatus.paid
        w.paid_at = utcnow()
        batch.paid_count += 1
        await session.flush()
        cause, kind, event = f"payout:{w.id}:{attempt}", "payout", EventType.payout_paid
        # Commission lines before accounts: the order refunds and completion take them in.
        paid_out = (await repository.paid_totals(session, w.shop_id)).get(w.currency, 0)
        await commissions.mark_paid(session, w.shop_id, w.currency, paid_out, cause)
        legs = [
            _shop(w.shop_id, Purpose.earnings_withdrawing, w.amount_minor),
            Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, -w.amount_minor),
        ]
    else:
        w.status = WithdrawalStatus.failed
        w.failure_reason = (outcome.failure_reason or "refused")[:500]
        batch.failed_count += 1
        legs = [
            _shop(w.shop_id, Purpose.earnings_withdrawing, w.amount_minor),
            _shop(w.shop_id, Purpose.earnings_available, -w.amount_minor),
        ]
        cause, kind, event = (
            f"payout-failed:{w.id}:{attempt}",
            "payout_failed",
            EventType.payout_failed,
        )
    # The shop's available account before `withdrawing`, as withdrawals take them.
    await ledger.lock_balance(
        session, OwnerKind.shop, w.shop_id, Purpose.earnings_available, w.currency
    )
    await ledger.post(session, kind=kind, cause=cause, currency=w.currency, legs=legs)
    await session.flush()
    await webhooks.emit(session, event, w.shop_id, _event(w))
