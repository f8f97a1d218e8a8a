"""Platform applications (the mobile app's backend and the like), which own webhook endpoints."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, IdMixin, TimestampMixin, text_enum


class ApplicationStatus(enum.StrEnum):
    active = "active"
    disabled = "disabled"


class Application(IdMixin, TimestampMixin, Base):
    """Created by an operator; receives the events of every shop and buyer on its endpoints
    while active. Disabling it keeps its endpoints as they are, and they receive nothing."""

    __tablename__ = "applications"

    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[ApplicationStatus] = mapped_column(
        text_enum(ApplicationStatus, "application_status"), default=ApplicationStatus.active
    )
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
