"""Outbox events, webhook endpoints, deliveries and every delivery attempt."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum


class EndpointStatus(enum.StrEnum):
    enabled = "enabled"
    disabled = "disabled"


class WebhookOwnerKind(enum.StrEnum):
    """Who owns an endpoint: a supplier (its own events) or a platform application (the events
    of every shop and buyer)."""

    supplier = "supplier"
    application = "application"


class DeliveryStatus(enum.StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"  # every attempt of the schedule failed
    cancelled = "cancelled"  # the endpoint was disabled or deleted first


class Event(IdMixin, CreatedAtMixin, Base):
    """A domain event, written in the same transaction as the change that caused it."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "owner_id", "id"),)

    type: Mapped[str] = mapped_column(String(64))
    # The tenant the event concerns: a supplier, or a shop. Who receives it follows from its type
    # (webhooks.catalogue): the owning supplier's endpoints, or every application's.
    owner_id: Mapped[uuid.UUID]
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)


class WebhookEndpoint(IdMixin, TimestampMixin, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index(None, "owner_kind", "owner_id"),)

    owner_kind: Mapped[WebhookOwnerKind] = mapped_column(
        text_enum(WebhookOwnerKind, "webhook_owner_kind")
    )
    # A supplier's or an application's id, as `owner_kind` says: no foreign key can name either
    # table (ledger accounts' owners are kept the same way). Neither is ever deleted.
    owner_id: Mapped[uuid.UUID]
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    # Signing needs the secret itself, so it is kept, never shown again after creation.
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    status: Mapped[EndpointStatus] = mapped_column(
        text_enum(EndpointStatus, "endpoint_status"), default=EndpointStatus.enabled
    )
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    # Start of the current run of failed attempts; cleared by any success.
    failing_since: Mapped[datetime | None]


class WebhookDelivery(IdMixin, CreatedAtMixin, Base):
    """One event to one endpoint, attempted on the retry schedule until it succeeds."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index(None, "endpoint_id", "id"), Index(None, "event_id"))

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        text_enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]


class WebhookAttempt(IdMixin, Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "delivery_id", "id"), Index(None, "endpoint_id", "id"))

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[bool]
    error: Mapped[str | None] = mapped_column(String(500))
    response_snippet: Mapped[str | None] = mapped_column(Text)
