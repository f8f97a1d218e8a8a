"""Routes for the shopkeeper's commission lines."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from xiaopu.auth.auth import CurrentPerson
from xiaopu.commissions import service
from xiaopu.commissions.schemas import CommissionOut
from xiaopu.db import DbSession
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.models.ledger import PartStatus

router = APIRouter(prefix="/v1/shops/mine", tags=["wallet"])


@router.get("/commissions")
async def list_commissions(
    person: CurrentPerson,
    session: DbSession,
    page: Pagination,
    commission_status: Annotated[PartStatus | None, Query(alias="status")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (UTC).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (UTC).")] = None,
) -> Page[CommissionOut]:
    """Every commission and markup line, newest first, with how it was computed and each change."""
    return await service.list_for_shop(
        session, person.account_id, commission_status, since, until, page
    )
