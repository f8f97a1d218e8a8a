"""Response models of the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from xiaopu.kit.schema import ResponseModel
from xiaopu.models import AuditAction


class AuditOperator(ResponseModel):
    """The operator who acted, as their account reads now."""

    account_id: uuid.UUID
    display_name: str | None
    login: str | None = Field(description="The account's email, or its phone without one.")


class AuditRecordOut(ResponseModel):
    id: uuid.UUID
    seq: int = Field(description="Numbered from 1 without gaps, in the order written.")
    at: datetime
    operator: AuditOperator | None = Field(
        description="Null for actions taken at the command line (see `actor`)."
    )
    actor: str = Field(
        description="Who acted, as written then: the operator's login, or `cli:<os user>`."
    )
    action: AuditAction
    object_type: str
    object_id: str | None
    reason: str | None
    before: dict[str, Any] | None = Field(description="The object's state before the action.")
    after: dict[str, Any] | None = Field(description="The object's state after the action.")
    request_id: str | None = Field(description="The X-Request-ID of the request that acted.")
    prev_hash: str = Field(description="sha256 of the previous record (hex; zeros for the first).")
    hash: str = Field(description="sha256 over `prev_hash` and this record's canonical form.")
