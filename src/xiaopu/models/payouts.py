"""Withdrawals shopkeepers and partner organisations ask for, and the payout batches that
pay them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, IdMixin, TimestampMixin, text_enum


class WithdrawalStatus(enum.StrEnum):
    requested = "requested"  # funds moved out of `available`, waiting for a batch
    processing = "processing"  # claimed under `payout_key`: asked of the provider, or about to be
    paid = "paid"
    failed = "failed"  # funds back in `available`; may be retried


class Withdrawal(IdMixin, TimestampMixin, Base):
    __tablename__ = "withdrawals"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # A withdrawal pays a shop or an organisation: exactly one of them.
        CheckConstraint("num_nonnulls(shop_id, organisation_id) = 1", name="one_payee"),
        Index(None, "shop_id", "id"),
        Index(None, "organisation_id", "id"),
        Index("ix_withdrawals_queue", "currency", "id", postgresql_where="status = 'requested'"),
        # A claim names what the provider was asked, so a run after a crash can look it up.
        CheckConstraint(
            "status <> 'processing' OR (payout_key IS NOT NULL AND claimed_at IS NOT NULL)",
            name="claimed_has_key",
        ),
        Index("ix_withdrawals_claimed", "claimed_at", postgresql_where="status = 'processing'"),
    )

    shop_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("shops.id"))
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[WithdrawalStatus] = mapped_column(
        text_enum(WithdrawalStatus, "withdrawal_status"), default=WithdrawalStatus.requested
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payout_batches.id"))
    # The provider's idempotency key of the latest attempt (`withdrawal:{id}:{attempt}`).
    payout_key: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    paid_at: Mapped[datetime | None]


class PayoutBatch(IdMixin, TimestampMixin, Base):
    __tablename__ = "payout_batches"

    currency: Mapped[str] = mapped_column(String(3))
    item_count: Mapped[int] = mapped_column(Integer)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    paid_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None]


class SandboxPayout(Base):
    """The sandbox payout provider's own books (payouts/providers.py): what it was asked to pay,
    by key. Not the platform's record of anything; a real provider keeps this on its side."""

    __tablename__ = "sandbox_payouts"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    payee_kind: Mapped[str] = mapped_column(String(20))
    payee_id: Mapped[uuid.UUID]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    succeeded: Mapped[bool]
    provider_ref: Mapped[str] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
