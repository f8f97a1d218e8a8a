"""Operators: the platform's staff, identified by their person account."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, text_enum


class OperatorRole(enum.StrEnum):
    admin = "admin"


class Operator(CreatedAtMixin, Base):
    """An operator; a disabled one keeps its row (the audit log names it) and is refused."""

    __tablename__ = "operators"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[OperatorRole] = mapped_column(
        text_enum(OperatorRole, "operator_role"), default=OperatorRole.admin
    )
    disabled_at: Mapped[datetime | None]
