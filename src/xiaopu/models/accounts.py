"""Person accounts (shopkeepers and buyers; also supplier members and operators) and sessions."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum


class AccountStatus(enum.StrEnum):
    active = "active"
    disabled = "disabled"


class Account(IdMixin, TimestampMixin, Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("email IS NOT NULL OR phone IS NOT NULL", name="has_login"),)

    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[AccountStatus] = mapped_column(
        text_enum(AccountStatus, "account_status"), default=AccountStatus.active
    )


class RefreshToken(IdMixin, CreatedAtMixin, Base):
    """One link in a rotation chain; `family_id` ties together every token of one login."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index(None, "family_id"),
        Index(None, "account_id"),
        # Every process polls for families revoked lately (auth/revocations.py); live tokens,
        # nearly all of them, stay out of this index.
        Index(None, "revoked_at", postgresql_where="revoked_at IS NOT NULL"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
