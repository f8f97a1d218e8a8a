"""Request and response bodies for platform applications."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.models import ApplicationStatus


class ApplicationCreate(RequestModel):
    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"\S",
        description="Who the application is, for operators (e.g. `mobile-app-backend`).",
    )


class ApplicationDisable(RequestModel):
    reason: str = Field(min_length=1, max_length=200, pattern=r"\S")


class ApplicationOut(ResponseModel):
    id: uuid.UUID
    name: str
    status: ApplicationStatus = Field(
        description="Only an active application's endpoints receive events."
    )
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
