"""Request and response bodies for webhook endpoints, events and delivery attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from xiaopu.kit.schema import RequestModel, ResponseModel, WebUrl
from xiaopu.models import DeliveryStatus, EndpointStatus
from xiaopu.webhooks.catalogue import EventType

WebhookUrl = WebUrl


class EndpointCreate(RequestModel):
    url: WebhookUrl = Field(description="HTTPS URL that receives the events.")
    event_types: list[EventType] = Field(min_length=1, max_length=len(EventType))
    description: str | None = Field(default=None, max_length=200)

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[EventType]) -> list[EventType]:
        return sorted(set(value))


class EndpointUpdate(RequestModel):
    url: WebhookUrl | None = None
    event_types: list[EventType] | None = Field(
        default=None, min_length=1, max_length=len(EventType)
    )
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = Field(default=None, description="Re-enable or disable the endpoint.")


class SecretRotation(RequestModel):
    overlap_seconds: int = Field(
        default=86_400,
        ge=0,
        le=7 * 86_400,
        description="How long the old secret keeps signing beside the new one.",
    )


class EndpointOut(ResponseModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    status: EndpointStatus
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...). Shown once: store it now.")


class EventOut(ResponseModel):
    id: uuid.UUID
    type: str
    data: dict[str, Any]
    created_at: datetime


class DeliveryOut(ResponseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    created_at: datetime


class AttemptOut(ResponseModel):
    id: uuid.UUID
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    succeeded: bool
    error: str | None
    response_snippet: str | None


class ReplayRequest(RequestModel):
    endpoint_id: uuid.UUID | None = Field(
        default=None, description="Replay to this endpoint only; default: every matching one."
    )
