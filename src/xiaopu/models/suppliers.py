"""Suppliers and their member accounts (minimal until the supply issue fills them out)."""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
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


class Supplier(IdMixin, TimestampMixin, Base):
    __tablename__ = "suppliers"

    name: Mapped[str] = mapped_column(String(120))
    status: Mapped[SupplierStatus] = mapped_column(
        text_enum(SupplierStatus, "supplier_status"), default=SupplierStatus.pending
    )


class SupplierMember(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "supplier_members"
    __table_args__ = (UniqueConstraint("supplier_id", "account_id"), Index(None, "account_id"))

    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    role: Mapped[MemberRole] = mapped_column(text_enum(MemberRole, "member_role"))
