"""Supplier settlements: frozen statements per period, their lines, and supplier payouts."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum


class Settlement(IdMixin, CreatedAtMixin, Base):
    """One supplier's statement for one period and currency: numbered per supplier without
    gaps, written once and never changed. `net_minor` is what the close moved from `payable`
    to `payable_settling` (when positive) or left behind as a carry (when not)."""

    __tablename__ = "settlements"
    __table_args__ = (
        UniqueConstraint("supplier_id", "currency", "period_start"),
        UniqueConstraint("supplier_id", "number"),
        CheckConstraint("number > 0", name="number_positive"),
        CheckConstraint("period_end > period_start", name="period_ordered"),
        CheckConstraint("carry_in_minor <= 0", name="carry_in_not_positive"),
        CheckConstraint("net_minor = carry_in_minor + lines_net_minor", name="net_adds_up"),
        CheckConstraint("payout_minor = greatest(net_minor, 0)", name="payout_is_positive_net"),
        CheckConstraint("carry_out_minor = least(net_minor, 0)", name="carry_out_is_negative_net"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
    )

    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id"))
    number: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    period: Mapped[str] = mapped_column(String(16))  # daily, weekly, monthly
    # The period's bounds as instants (local midnights of the platform's time zone, in UTC),
    # and as the local days people read.
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    line_count: Mapped[int] = mapped_column(Integer)
    sales_minor: Mapped[int] = mapped_column(BigInteger)
    refunds_minor: Mapped[int] = mapped_column(BigInteger)
    commission_minor: Mapped[int] = mapped_column(BigInteger)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)
    shipping_minor: Mapped[int] = mapped_column(BigInteger)
    other_minor: Mapped[int] = mapped_column(BigInteger)
    lines_net_minor: Mapped[int] = mapped_column(BigInteger)
    carry_in_minor: Mapped[int] = mapped_column(BigInteger)
    net_minor: Mapped[int] = mapped_column(BigInteger)
    payout_minor: Mapped[int] = mapped_column(BigInteger)
    carry_out_minor: Mapped[int] = mapped_column(BigInteger)


class SettlementLineKind(enum.StrEnum):
    sale = "sale"  # a supplier order completed: its share became payable
    refund = "refund"  # a refund after completion took back from payable
    adjustment = "adjustment"  # any other movement of payable (a forfeited hold, say)


class SettlementLine(IdMixin, Base):
    """One movement of a supplier's `payable` frozen into a settlement. `source` names it once
    for ever (`completion:{supplier_order}` or the ledger cause), so no movement is settled
    twice. Every column is from the supplier's side: net = sales − commission − fee +
    shipping + other; a refund's columns are negative."""

    __tablename__ = "settlement_lines"
    __table_args__ = (
        UniqueConstraint("source"),
        Index(None, "settlement_id", "at", "id"),
        CheckConstraint(
            "net_minor = sales_minor - commission_minor - platform_fee_minor + shipping_minor "
            "+ other_minor",
            name="net_adds_up",
        ),
    )

    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlements.id"))
    kind: Mapped[SettlementLineKind] = mapped_column(
        text_enum(SettlementLineKind, "settlement_line_kind")
    )
    source: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    # No foreign keys to the orders: a close holds the supplier's ledger accounts while it
    # writes lines, and a refund holds its supplier order while it waits for those accounts;
    # the key-share lock a foreign key takes on the supplier order would close that cycle.
    order_id: Mapped[uuid.UUID | None]
    supplier_order_id: Mapped[uuid.UUID | None]
    sales_minor: Mapped[int] = mapped_column(BigInteger)
    commission_minor: Mapped[int] = mapped_column(BigInteger)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)
    shipping_minor: Mapped[int] = mapped_column(BigInteger)
    other_minor: Mapped[int] = mapped_column(BigInteger)
    net_minor: Mapped[int] = mapped_column(BigInteger)


class SettlementClose(Base):
    """A period the close job has finished for every supplier: later runs skip it at once."""

    __tablename__ = "settlement_closes"

    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    settlements: Mapped[int] = mapped_column(Integer)
    closed_at: Mapped[datetime]


class SupplierPayoutStatus(enum.StrEnum):
    pending = "pending"  # waiting for the payout job
    processing = "processing"  # claimed: sent, or about to be sent, to the provider
    paid = "paid"
    failed = "failed"  # money still in `payable_settling`; may be retried


class SupplierPayout(IdMixin, TimestampMixin, Base):
    """The payout of one settlement's positive net. Each attempt is its own provider key
    (`supplier_payout:{id}:{attempt}`), paid at most once."""

    __tablename__ = "supplier_payouts"
    __table_args__ = (
        UniqueConstraint("settlement_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index(None, "supplier_id", "id"),
        Index(
            "ix_supplier_payouts_queue",
            "status",
            "id",
            postgresql_where="status IN ('pending', 'processing')",
        ),
    )

    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id"))
    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlements.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[SupplierPayoutStatus] = mapped_column(
        text_enum(SupplierPayoutStatus, "supplier_payout_status"),
        default=SupplierPayoutStatus.pending,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None]
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    paid_at: Mapped[datetime | None]
