"""Orders: supplier orders (one per supplier), frozen lines, payments, refunds and returns."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum


class OrderStatus(enum.StrEnum):
    pending_payment = "pending_payment"
    paid = "paid"
    expired = "expired"


class SupplierOrderStatus(enum.StrEnum):
    pending_payment = "pending_payment"
    paid = "paid"
    accepted = "accepted"
    shipped = "shipped"
    delivered = "delivered"
    completed = "completed"
    cancelled = "cancelled"
    expired = "expired"


class Attribution(enum.StrEnum):
    """How an order relates to the share link its buyer came through."""

    none = "none"  # no token presented
    link = "link"  # a valid token for this shop: tied to the link and click
    expired = "expired"  # a genuine token past the attribution window: shop only
    shop_mismatch = "shop_mismatch"  # a genuine token for another shop: shop only, recorded


class PaymentStatus(enum.StrEnum):
    pending = "pending"
    paid = "paid"
    failed = "failed"


class RefundStatus(enum.StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class RefundReason(enum.StrEnum):
    return_approved = "return_approved"
    supplier_cancelled = "supplier_cancelled"
    order_expired = "order_expired"


class ReturnStatus(enum.StrEnum):
    requested = "requested"
    approved = "approved"  # refund under way
    rejected = "rejected"
    refunded = "refunded"


class Decider(enum.StrEnum):
    supplier = "supplier"
    operator = "operator"


_AMOUNTS_NOT_NEGATIVE = "items_minor >= 0 AND shipping_minor >= 0 AND refunded_minor >= 0"


class Order(IdMixin, TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_AMOUNTS_NOT_NEGATIVE, name="amounts_not_negative"),
        CheckConstraint("total_minor = items_minor + shipping_minor", name="total_adds_up"),
        CheckConstraint("refunded_minor <= total_minor", name="refund_within_total"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        CheckConstraint(
            "buyer_account_id IS NOT NULL OR access_token_hash IS NOT NULL", name="buyer_known"
        ),
        # Guests' orders (most of those placed from share links) have no account: they stay
        # out of the index instead of filling it with NULLs on every checkout.
        Index(None, "buyer_account_id", "id", postgresql_where="buyer_account_id IS NOT NULL"),
        Index(None, "shop_id", "id"),
        # A shop's orders of a local day, as the dashboards' rollup recomputes them; unpaid
        # orders stay out (checkout writes no entry).
        Index("ix_orders_shop_paid", "shop_id", "paid_at", postgresql_where="paid_at IS NOT NULL"),
        # The expiry job's queue: only unpaid orders are in this index.
        Index(
            "ix_orders_pending_expiry",
            "expires_at",
            postgresql_where="status = 'pending_payment'",
        ),
    )

    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id"))
    buyer_account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"))
    # Guests read their order with a secret handed out once at checkout; only its hash is kept.
    access_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    buyer_phone: Mapped[str] = mapped_column(String(20))
    address: Mapped[dict[str, Any]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[OrderStatus] = mapped_column(
        text_enum(OrderStatus, "order_status"), default=OrderStatus.pending_payment
    )
    currency: Mapped[str] = mapped_column(String(3))
    items_minor: Mapped[int] = mapped_column(BigInteger)
    shipping_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    attribution: Mapped[Attribution] = mapped_column(
        text_enum(Attribution, "order_attribution"), default=Attribution.none
    )
    link_id: Mapped[uuid.UUID | None] = mapped_column()
    click_id: Mapped[uuid.UUID | None] = mapped_column()
    # The shop a mismatched token was issued for, kept for fraud review.
    token_shop_id: Mapped[uuid.UUID | None] = mapped_column()
    self_purchase: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    # Set while the order counts as one completed sale of its shop (shops.completed_sales): from
    # when a supplier order of it completes with a unit kept, until an overruled return takes
    # back the last unit kept of its completed supplier orders. Unset by checkout: no parameter.
    sale_counted_at: Mapped[datetime | None]


class SupplierOrder(IdMixin, TimestampMixin, Base):
    __tablename__ = "supplier_orders"
    __table_args__ = (
        UniqueConstraint("order_id", "supplier_id"),
        CheckConstraint(_AMOUNTS_NOT_NEGATIVE, name="amounts_not_negative"),
        CheckConstraint("total_minor = items_minor + shipping_minor", name="total_adds_up"),
        CheckConstraint("refunded_minor <= total_minor", name="refund_within_total"),
        Index(None, "supplier_id", "status", "id"),
        # A supplier's orders of a local day, for the dashboards' rollup.
        Index(
            "ix_supplier_orders_supplier_paid",
            "supplier_id",
            "paid_at",
            postgresql_where="paid_at IS NOT NULL",
        ),
        # Carrier callbacks find shipped supplier orders; unshipped ones stay out of the index.
        Index(None, "carrier", "tracking_number", postgresql_where="carrier IS NOT NULL"),
        # The completion job's queue.
        Index(
            "ix_supplier_orders_completion",
            "return_closes_at",
            postgresql_where="status = 'delivered'",
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id"))
    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id"))
    status: Mapped[SupplierOrderStatus] = mapped_column(
        text_enum(SupplierOrderStatus, "supplier_order_status"),
        default=SupplierOrderStatus.pending_payment,
    )
    currency: Mapped[str] = mapped_column(String(3))
    items_minor: Mapped[int] = mapped_column(BigInteger)
    shipping_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    carrier: Mapped[str | None] = mapped_column(String(40))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    paid_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # Delivery plus the longest return window among its lines.
    return_closes_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]


class OrderLine(IdMixin, CreatedAtMixin, Base):
    """One variant in an order, with its prices and rates frozen at checkout."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "unit_price_minor >= 0 AND unit_markup_minor >= 0", name="unit_amounts_not_negative"
        ),
        CheckConstraint("base_minor = unit_price_minor * quantity", name="base_adds_up"),
        CheckConstraint("markup_minor = unit_markup_minor * quantity", name="markup_adds_up"),
        CheckConstraint(
            "returned_quantity BETWEEN 0 AND quantity", name="returned_within_quantity"
        ),
        CheckConstraint("commission_bps BETWEEN 0 AND 10000", name="commission_bps_range"),
        CheckConstraint("platform_fee_bps BETWEEN 0 AND 10000", name="platform_fee_bps_range"),
        CheckConstraint("boost_bps BETWEEN 0 AND 10000", name="boost_bps_range"),
        CheckConstraint(
            "campaign_id IS NOT NULL OR (boost_bps = 0 AND NOT boost_withheld)",
            name="boost_only_on_campaign_lines",
        ),
        Index(None, "order_id"),
        Index(None, "supplier_order_id"),
        Index(
            "ix_order_lines_campaign_id", "campaign_id", postgresql_where="campaign_id IS NOT NULL"
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    supplier_order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="CASCADE")
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("variants.id"))
    sku: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    quantity: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    unit_markup_minor: Mapped[int] = mapped_column(BigInteger)
    base_minor: Mapped[int] = mapped_column(BigInteger)
    markup_minor: Mapped[int] = mapped_column(BigInteger)
    commission_bps: Mapped[int] = mapped_column(SmallInteger)
    platform_fee_bps: Mapped[int] = mapped_column(SmallInteger)
    return_window_days: Mapped[int] = mapped_column(SmallInteger)
    # Units approved for return (refunded or being refunded); never above quantity.
    returned_quantity: Mapped[int] = mapped_column(Integer, default=0)
    # Sold at a campaign's terms: unit_price_minor is the campaign price, and boost_bps the boost
    # the line reserved from the campaign's budget (0, with boost_withheld, when what was left
    # could not cover it). Units and boost go back to the campaign on expiry, cancel and refunds.
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("campaigns.id"))
    boost_bps: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    boost_withheld: Mapped[bool] = mapped_column(default=False, server_default="false")


class Payment(IdMixin, TimestampMixin, Base):
    """An order's payment: written by checkout, opened at the provider when the buyer asks to
    pay (orders/payments.py open_payment), marked paid or failed by the provider's callback."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref"),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("opened_at IS NULL OR pay_url IS NOT NULL", name="opened_with_pay_url"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), unique=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    # What the provider files the payment under and its callbacks name: our own merchant
    # reference, made from the order id at checkout (providers.merchant_ref), so it is known
    # before the provider is asked and a callback finds its payment whatever became of the call.
    provider_ref: Mapped[str] = mapped_column(String(128))
    # Claim, commit, call, record: a request about to ask the provider to open the payment
    # claims it first, so that a concurrent ask waits instead of calling too; a claim whose
    # request died lapses (payments.OPEN_CLAIM). The answer is recorded with opened_at.
    open_claimed_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    pay_url: Mapped[str | None] = mapped_column(String(2048))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(
        text_enum(PaymentStatus, "payment_status"), default=PaymentStatus.pending
    )
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    paid_at: Mapped[datetime | None]


class PaymentCallback(IdMixin, Base):
    """Every provider callback applied, by the provider's event id: a repeat applies nothing."""

    __tablename__ = "payment_callbacks"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"))
    outcome: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]


class Refund(IdMixin, TimestampMixin, Base):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("shipping_minor BETWEEN 0 AND amount_minor", name="shipping_within_amount"),
        CheckConstraint("claimed_at IS NULL OR status = 'pending'", name="claimed_while_pending"),
        Index(None, "order_id"),
        Index(None, "supplier_order_id"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    supplier_order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="CASCADE")
    )
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    reason: Mapped[RefundReason] = mapped_column(text_enum(RefundReason, "refund_reason"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    shipping_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[RefundStatus] = mapped_column(
        text_enum(RefundStatus, "refund_status"), default=RefundStatus.pending
    )
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    succeeded_at: Mapped[datetime | None]
    # Set while a refund job is asking the provider (orders/payments.py send_refund_in_steps);
    # a claim older than REFUND_CLAIM was left by a dead worker.
    claimed_at: Mapped[datetime | None]


class RefundLine(IdMixin, Base):
    """The units of one order line a refund pays back."""

    __tablename__ = "refund_lines"
    __table_args__ = (
        UniqueConstraint("refund_id", "order_line_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        Index(None, "order_line_id"),
    )

    refund_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"))
    order_line_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("order_lines.id", ondelete="CASCADE")
    )
    quantity: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class Return(IdMixin, TimestampMixin, Base):
    __tablename__ = "returns"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index(None, "supplier_id", "status", "id"),
        Index(None, "order_id"),
        Index(None, "order_line_id"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    supplier_order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="CASCADE")
    )
    order_line_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("order_lines.id", ondelete="CASCADE")
    )
    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[ReturnStatus] = mapped_column(
        text_enum(ReturnStatus, "return_status"), default=ReturnStatus.requested
    )
    decided_by: Mapped[Decider | None] = mapped_column(text_enum(Decider, "return_decider"))
    decision_note: Mapped[str | None] = mapped_column(String(500))
    restock: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_at: Mapped[datetime | None]
    refund_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("refunds.id"))
