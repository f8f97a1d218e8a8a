"""Routes for the shopkeeper's wallet and withdrawals, and operators' payout runs."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from xiaopu.auth.auth import CurrentOperator, CurrentPerson
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import RequiredIdempotency
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.payouts import service
from xiaopu.payouts.schemas import PayoutRunQueued, WalletBalance, WithdrawalIn, WithdrawalOut

router = APIRouter(prefix="/v1/shops/mine", tags=["wallet"])
operator_router = APIRouter(prefix="/v1/operator/payouts", tags=["operator"])


@router.get("/wallet", operation_id="wallet-get_wallet")
async def get_wallet(person: CurrentPerson, session: DbSession) -> list[WalletBalance]:
    """Earnings per currency: pending, held, available, being withdrawn, paid, negative carry."""
    return await service.wallet(session, person.account_id)


@router.post(
    "/withdrawals", status_code=status.HTTP_201_CREATED, operation_id="wallet-request_withdrawal"
)
async def request_withdrawal(
    body: WithdrawalIn,
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    idempotency: RequiredIdempotency,
) -> WithdrawalOut:
    """Withdraw from the available balance: at least the payout threshold, at most what is
    available, and not while a clawback has left the balance negative."""
    return await idempotency.once(
        lambda: service.request_withdrawal(session, settings, person.account_id, body)
    )


@router.get("/withdrawals", operation_id="wallet-list_withdrawals")
async def list_withdrawals(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[WithdrawalOut]:
    return await service.list_withdrawals(session, person.account_id, page)


@router.post("/withdrawals/{withdrawal_id}/retry", operation_id="wallet-retry_withdrawal")
async def retry_withdrawal(
    withdrawal_id: uuid.UUID,
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    idempotency: RequiredIdempotency,
) -> WithdrawalOut:
    """Ask again for a withdrawal whose payout failed (its funds went back to available)."""
    return await idempotency.once(
        lambda: service.retry_withdrawal(session, settings, person.account_id, withdrawal_id)
    )


@operator_router.post(
    "/run", status_code=status.HTTP_202_ACCEPTED, operation_id="operator-run_payouts"
)
async def run_payouts(
    operator: CurrentOperator, session: DbSession, idempotency: RequiredIdempotency
) -> PayoutRunQueued:
    """Queue a payout run now (the `payouts.run` schedule runs one every 5 minutes). The
    worker pays: each payout is claimed, asked of the provider outside any transaction, and
    recorded. A retry with the same Idempotency-Key replays the answer and queues nothing."""
    return await idempotency.once(
        lambda: service.queue_run(session, operator_id=operator.account_id)
    )
