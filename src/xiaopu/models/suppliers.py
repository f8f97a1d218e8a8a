"""Suppliers and their member accounts (minimal until the supply issue fills them out)."""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum


class SupplierStatus(enum.StrEnum):
    pending = "pending"
    active = "active"
    rejected = "rejected"
    suspended = "suspended"


class MemberRole(enum.StrEnum):
    owner = "owner"
    staff = "staff"


class PayoutMethod(enum.StrEnum):
    bank_transfer = "bank_transfer"
    alipay = "alipay"
    wechat_pay = "wechat_pay"


class Supplier(IdMixin, TimestampMixin, Base):
    __tablename__ = "suppliers"
    __table_args__ = (
        CheckConstraint("shipping_fee_minor >= 0", name="shipping_fee_not_negative"),
        CheckConstraint("shipping_currency ~ '^[A-Z]{3}$'", name="shipping_currency_code"),
        # Suppliers joined per local day (the operators' dashboard).
        Index(None, "created_at"),
    )

    name: Mapped[str] = mapped_column(String(120))
    status: Mapped[SupplierStatus] = mapped_column(
        text_enum(SupplierStatus, "supplier_status"), default=SupplierStatus.pending
    )
    contact_name: Mapped[str | None] = mapped_column(String(80))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(20))
    payout_method: Mapped[PayoutMethod | None] = mapped_column(
        text_enum(PayoutMethod, "payout_method")
    )
    payout_account_name: Mapped[str | None] = mapped_column(String(120))
    payout_account_number: Mapped[str | None] = mapped_column(String(64))
    # A flat shipping charge per supplier order, in one currency (0: free shipping).
    shipping_fee_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    shipping_currency: Mapped[str] = mapped_column(String(3), default="CNY", server_default="CNY")
    # Why an operator rejected or suspended it; cleared on approval.
    status_reason: Mapped[str | None] = mapped_column(String(500))


class SupplierMember(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "supplier_members"
    __table_args__ = (UniqueConstraint("supplier_id", "account_id"), Index(None, "account_id"))

    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    role: Mapped[MemberRole] = mapped_column(text_enum(MemberRole, "member_role"))
