"""Supplier payouts through the payout provider: claim (commit), call the provider outside any
transaction, record (commit). A payout a dead worker left `processing` is looked up at the
provider before it is sent again, under the same key, so nobody is paid twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.config import Settings
from xiaopu.kit.clock import utcnow
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models.ledger import PLATFORM_ID, OwnerKind, Purpose
from xiaopu.models.settlements import Settlement, SupplierPayout, SupplierPayoutStatus
from xiaopu.payouts.providers import (
    Payee,
    PayeeKind,
    PayoutOutcome,
    PayoutProvider,
    payout_provider,
)
from xiaopu.settlements import repository
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

log = structlog.get_logger(__name__)

BATCH_SIZE = 200
# A claim older than this was left by a worker that died (a provider call takes seconds).
CLAIM_LEASE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Claim:
    payout_id: uuid.UUID
    supplier_id: uuid.UUID
    attempt: int
    amount_minor: int
    currency: str
    recovered: bool  # left `processing` by an earlier run: ask the provider first

    @property
    def key(self) -> str:
        return payout_key(self.payout_id, self.attempt)


@dataclass(frozen=True, slots=True)
class PayoutRun:
    paid: int
    failed: int
    recovered: int
    unanswered: int


def payout_key(payout_id: uuid.UUID, attempt: int) -> str:
    """The provider's idempotency key of one attempt: paid at most once, whoever asks."""
    return f"supplier_payout:{payout_id}:{attempt}"


async def claim(session: AsyncSession, limit: int = BATCH_SIZE) -> list[Claim]:
    """Mark waiting payouts `processing` under a new attempt, and take back stale claims under
    their old one; the caller commits before any provider call."""
    now = utcnow()
    claims = []
    for payout in await repository.claimable(session, now - CLAIM_LEASE, limit):
        recovered = payout.status is SupplierPayoutStatus.processing
        if not recovered:
            payout.attempts += 1
            payout.status = SupplierPayoutStatus.processing
        payout.claimed_at = now
        claims.append(
            Claim(
                payout.id,
                payout.supplier_id,
                payout.attempts,
                payout.amount_minor,
                payout.currency,
                recovered,
            )
        )
    await session.flush()
    return claims


async def send(provider: PayoutProvider, item: Claim) -> PayoutOutcome:
    """Outside any transaction. A recovered claim may have reached the provider before its
    worker died: its outcome is read back; only a key never received is paid now."""
    if item.recovered:
        known = await provider.lookup(item.key)
        if known is not None:
            return known
    payee = Payee(PayeeKind.supplier, item.supplier_id)
    return await provider.pay(item.key, payee, item.amount_minor, item.currency)


def _event(payout: SupplierPayout, settlement: Settlement) -> dict[str, object]:
    return {
        "supplier_payout_id": str(payout.id),
        "supplier_id": str(payout.supplier_id),
        "settlement_id": str(payout.settlement_id),
        "settlement_number": settlement.number,
        "first_day": settlement.first_day.isoformat(),
        "last_day": settlement.last_day.isoformat(),
        "currency": payout.currency,
        "amount_minor": payout.amount_minor,
        "status": str(payout.status),
        "attempt": payout.attempts,
        "provider_ref": payout.provider_ref,
        "failure_reason": payout.failure_reason,
    }


async def record(session: AsyncSession, item: Claim, outcome: PayoutOutcome) -> bool:
    """Write the provider's answer for this attempt, once: paid moves the money out of
    `payable_settling` against the platform's clearing account; failed leaves it there for a
    retry. False if the attempt was recorded already (another run got there first)."""
    payout = await repository.payout(session, item.payout_id, lock=True)
    if (
        payout is None
        or payout.status is not SupplierPayoutStatus.processing
        or payout.attempts != item.attempt
    ):
        return False
    payout.provider_ref = outcome.provider_ref
    if outcome.succeeded:
        payout.status = SupplierPayoutStatus.paid
        payout.paid_at = utcnow()
        await ledger.post(
            session,
            kind="supplier_payout",
            cause=item.key,
            currency=payout.currency,
            legs=[
                Leg(
                    OwnerKind.supplier,
                    payout.supplier_id,
                    Purpose.payable_settling,
                    payout.amount_minor,
                ),
                Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, -payout.amount_minor),
            ],
        )
        event = EventType.supplier_payout_paid
    else:
        payout.status = SupplierPayoutStatus.failed
        payout.failure_reason = (outcome.failure_reason or "refused")[:500]
        event = EventType.supplier_payout_failed
    await session.flush()
    settlement = await session.get(Settlement, payout.settlement_id)
    if settlement is None:  # a payout's settlement is frozen: never deleted
        raise RuntimeError(f"supplier payout {payout.id} has no settlement")
    await webhooks.emit(session, event, payout.supplier_id, _event(payout, settlement))
    return True


async def pay_supplier_payouts(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    provider: PayoutProvider | None = None,
    limit: int = BATCH_SIZE,
) -> PayoutRun:
    """Pay the waiting supplier payouts: one committed claim, then per payout a provider call
    and a committed record. A provider that cannot be reached leaves the payout `processing`;
    once its claim is stale, a later run looks it up and finishes it."""
    provider = provider or payout_provider(settings)
    async with sessionmaker() as session, session.begin():
        claims = await claim(session, limit)
    paid = failed = unanswered = 0
    for item in claims:
        try:
            outcome = await send(provider, item)
        except Exception:
            unanswered += 1
            log.exception("supplier_payout.unanswered", payout_id=str(item.payout_id))
            continue
        async with sessionmaker() as session, session.begin():
            if not await record(session, item, outcome):
                continue
        if outcome.succeeded:
            paid += 1
        else:
            failed += 1
    return PayoutRun(paid, failed, sum(c.recovered for c in claims), unanswered)
