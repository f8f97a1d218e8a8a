"""The double-entry ledger (accounts, transactions, append-only entries) and commission lines."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum

# The platform's own accounts are owned by this id, so every account has an owner.
PLATFORM_ID = uuid.UUID(int=0)


class OwnerKind(enum.StrEnum):
    shop = "shop"
    supplier = "supplier"
    platform = "platform"
    # A partner organisation: its override (earnings_pending until month close, then
    # earnings_available), kept in counters like a shop's.
    organisation = "organisation"


class Purpose(enum.StrEnum):
    """What an account holds. Shops: earnings by stage; suppliers: what they are owed by stage;
    the platform: buyers' money in hand (clearing), its fees, and what it has paid out."""

    earnings_pending = "earnings_pending"
    earnings_held = "earnings_held"
    earnings_available = "earnings_available"
    earnings_withdrawing = "earnings_withdrawing"  # asked for, not yet paid out
    payable_pending = "payable_pending"
    payable = "payable"
    payable_settling = "payable_settling"  # frozen into a settlement, awaiting its payout
    fees_pending = "fees_pending"
    fees = "fees"
    clearing = "clearing"


class LedgerAccount(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("owner_kind", "owner_id", "purpose", "currency"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
    )

    owner_kind: Mapped[OwnerKind] = mapped_column(text_enum(OwnerKind, "ledger_owner_kind"))
    owner_id: Mapped[uuid.UUID]
    purpose: Mapped[Purpose] = mapped_column(text_enum(Purpose, "ledger_purpose"))
    currency: Mapped[str] = mapped_column(String(3))
    # Sum of this account's entries (debits positive), kept in the posting's transaction and
    # checked by the reconciliation job. Platform accounts, touched by every order, keep none:
    # one counter row would serialise all checkouts; their balances are summed when read.
    balance_minor: Mapped[int | None] = mapped_column(BigInteger)


class LedgerTransaction(IdMixin, CreatedAtMixin, Base):
    """One balanced movement. `cause` is unique: posting the same cause twice posts nothing."""

    __tablename__ = "ledger_transactions"

    kind: Mapped[str] = mapped_column(String(40))
    cause: Mapped[str] = mapped_column(String(200), unique=True)
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    memo: Mapped[str | None] = mapped_column(String(500))


class LedgerEntry(IdMixin, CreatedAtMixin, Base):
    """Debits are positive, credits negative; each transaction's entries sum to 0 per currency
    (a deferred constraint trigger), and no entry is ever updated or deleted (a trigger)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount_minor <> 0", name="amount_not_zero"),
        Index(None, "transaction_id"),
        Index(None, "account_id", "id"),
    )

    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class Beneficiary(enum.StrEnum):
    shop = "shop"
    platform = "platform"
    supplier = "supplier"


class PartKind(enum.StrEnum):
    commission = "commission"  # the shop's share of the base, at the line's commission rate
    boost = "boost"  # a campaign's extra commission, from the supplier's share like commission
    markup = "markup"  # the shop's markup, paid by the buyer on top of the base
    platform_fee = "platform_fee"
    supplier_share = "supplier_share"  # base - commission - fee (+ shipping, on its own part)
    shipping = "shipping"


class PartStatus(enum.StrEnum):
    pending = "pending"
    held = "held"  # self-purchase under review
    available = "available"
    paid = "paid"
    forfeited = "forfeited"  # not earned (self-purchase policy `none`, or a hold refused)


class CommissionAction(enum.StrEnum):
    """What happened to a commission line, as its history records it."""

    accrued = "accrued"  # the order was paid: the line's money was credited
    reversed = "reversed"  # a refund took some of it back (a clawback once released or paid)
    released = "released"  # completion: pending became available (payable, for the supplier)
    paid = "paid"  # a payout to the shop covered it
    held_released = "held_released"  # an operator let a held self-purchase earn
    forfeited = "forfeited"  # an operator refused a held self-purchase: see `forfeited_to`
    # Completion moved a refused hold's money on to the available stage (the supplier's
    # payable, the platform's fees), where it is settled with the supplier order.
    forfeit_completed = "forfeit_completed"


# Where a refused hold's money goes: the commission back to the supplier, the markup to the
# platform, at the stage the order is at (and on to the available stage at completion).
FORFEIT_PURPOSES = (Purpose.payable_pending, Purpose.payable, Purpose.fees_pending, Purpose.fees)


class Rule(enum.StrEnum):
    normal = "normal"
    self_purchase_earn = "self_purchase_earn"
    self_purchase_none = "self_purchase_none"
    self_purchase_hold = "self_purchase_hold"


class Commission(IdMixin, TimestampMixin, Base):
    """One part of one paid order line for one beneficiary, with its explanation: what it was
    computed from, how it was rounded, and (in commission_events) every change of it."""

    __tablename__ = "commissions"
    __table_args__ = (
        UniqueConstraint(
            "supplier_order_id",
            "order_line_id",
            "beneficiary",
            "kind",
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint("accrued_minor >= 0", name="accrued_not_negative"),
        # Rounding can make one partial refund give a supplier's share back by a minor unit
        # (1-unit prices), so only the upper bound is a law; the total always telescopes.
        CheckConstraint("reversed_minor <= accrued_minor", name="reversed_within_accrued"),
        CheckConstraint(
            "forfeited_to IS NULL OR (status = 'forfeited' AND forfeited_to IN ("
            + ", ".join(f"'{p}'" for p in FORFEIT_PURPOSES)
            + "))",
            name="forfeited_to_forfeited",
        ),
        Index(None, "shop_id", "id"),
        # A supplier's lines (its statement reads its events by supplier and time, below); the
        # operators' queue of held self-purchases reads the few held ones newest first without
        # walking the rest.
        Index(None, "supplier_id", "id"),
        Index("ix_commissions_held", "id", postgresql_where=text("status = 'held'")),
        # Room on each page for status changes to stay heap-only (no index touched): completion
        # rewrites every line once.
        {"postgresql_with": {"fillfactor": 85}},
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    supplier_order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("supplier_orders.id"))
    # Shipping belongs to the supplier order, not a line: its part has no line.
    order_line_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("order_lines.id"))
    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id"))
    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id"))
    beneficiary: Mapped[Beneficiary] = mapped_column(text_enum(Beneficiary, "beneficiary"))
    kind: Mapped[PartKind] = mapped_column(text_enum(PartKind, "commission_kind"))
    currency: Mapped[str] = mapped_column(String(3))
    base_minor: Mapped[int] = mapped_column(BigInteger)
    rate_bps: Mapped[int | None] = mapped_column(SmallInteger)
    rule: Mapped[Rule] = mapped_column(text_enum(Rule, "commission_rule"))
    rounding: Mapped[str] = mapped_column(String(300))
    accrued_minor: Mapped[int] = mapped_column(BigInteger)
    reversed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[PartStatus] = mapped_column(text_enum(PartStatus, "commission_status"))
    # The account a refused hold's money sits in now, so that a refund takes it back from there.
    # Null on every other line, and on a line forfeited at accrual (policy `none`), which never
    # held any: its commission stays in the supplier's share and its markup is the platform's.
    forfeited_to: Mapped[Purpose | None] = mapped_column(
        text_enum(Purpose, "commission_forfeited_to")
    )


class CommissionEvent(IdMixin, Base):
    """A change to a commission line (one of CommissionAction), with cause and time."""

    __tablename__ = "commission_events"
    # The unique key also serves reading a line's history (its leading column).
    # A supplier's statement reads its movements of a period in one range of (supplier, time).
    __table_args__ = (UniqueConstraint("commission_id", "cause"), Index(None, "supplier_id", "at"))

    commission_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("commissions.id"))
    # The line's supplier, copied for statements; the database fills it in from the line when an
    # insert leaves it out (a trigger), so every writer of events keeps it right.
    supplier_id: Mapped[uuid.UUID]
    action: Mapped[CommissionAction] = mapped_column(
        text_enum(CommissionAction, "commission_action")
    )
    status: Mapped[PartStatus] = mapped_column(text_enum(PartStatus, "commission_event_status"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    cause: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
