"""Request and response bodies for the wallet, withdrawals, payout batches and payout runs."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from xiaopu.kit.money import CurrencyCode
from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.models import WithdrawalStatus


class WalletBalance(ResponseModel):
    currency: str
    pending_minor: int = Field(description="Earned on paid orders still in their return window.")
    held_minor: int = Field(description="Self-purchases held for an operator's review.")
    available_minor: int = Field(description="Completed: yours to withdraw.")
    withdrawing_minor: int = Field(description="Asked for, not yet paid out.")
    paid_minor: int = Field(description="Paid out to you so far.")
    negative_carry_minor: int = Field(
        description="Clawed back beyond your balance: later earnings cover it before withdrawals."
    )


class WithdrawalIn(RequestModel):
    amount_minor: int = Field(gt=0, le=10**12)
    currency: CurrencyCode


class WithdrawalOut(ResponseModel):
    id: uuid.UUID
    currency: str
    amount_minor: int
    status: WithdrawalStatus
    attempts: int
    failure_reason: str | None
    created_at: datetime
    paid_at: datetime | None


class BatchOut(ResponseModel):
    id: uuid.UUID
    currency: str
    item_count: int
    total_minor: int
    paid_count: int
    failed_count: int
    created_at: datetime
    completed_at: datetime | None


class QueuedPayouts(ResponseModel):
    currency: str
    status: WithdrawalStatus = Field(
        description="`requested`: waiting to be claimed; `processing`: claimed by a run."
    )
    count: int
    total_minor: int


class PayoutRunQueued(ResponseModel):
    job: str = Field(description="The queued job; the worker runs it.")
    queued: list[QueuedPayouts] = Field(
        description="Withdrawals the run will pay (or finish), per currency and status."
    )
