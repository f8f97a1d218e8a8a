"""The operators' audit log, read by operators."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from xiaopu.audit import service
from xiaopu.audit.repository import Filters
from xiaopu.audit.schemas import AuditRecordOut
from xiaopu.auth.auth import CurrentOperator
from xiaopu.db import DbSession
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.models import AuditAction

operator_router = APIRouter(prefix="/v1/operator/audit", tags=["operator"])


@operator_router.get("", operation_id="operator-list_audit_records")
async def list_audit_records(
    operator: CurrentOperator,
    session: DbSession,
    page: Pagination,
    operator_id: Annotated[
        uuid.UUID | None, Query(alias="operator", description="The acting operator's account.")
    ] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    action: AuditAction | None = None,
    since: Annotated[
        AwareDatetime | None, Query(description="At or after (with a UTC offset).")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before (with a UTC offset).")] = None,
) -> Page[AuditRecordOut]:
    """What operators did, newest first: who, when, to which object, why, and the object's
    state before and after."""
    filters = Filters(operator_id, object_type, object_id, action, since, until)
    return await service.list_records(session, filters, page)
