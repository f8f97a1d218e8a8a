"""Operators: the platform's staff, identified by their person account."""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, text_enum


class OperatorRole(enum.StrEnum):
    admin = "admin"


class Operator(CreatedAtMixin, Base):
    __tablename__ = "operators"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[OperatorRole] = mapped_column(
        text_enum(OperatorRole, "operator_role"), default=OperatorRole.admin
    )
