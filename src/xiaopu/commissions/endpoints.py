"""Routes for the shopkeeper's commission lines and suppliers' statements."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from xiaopu.auth.auth import CurrentPerson
from xiaopu.commissions import service, statements
from xiaopu.commissions.schemas import CommissionOut, Statement
from xiaopu.db import DbSession
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.models.ledger import PartStatus
from xiaopu.orders.auth import OrdersReader

router = APIRouter(prefix="/v1/shops/mine", tags=["wallet"])
supplier_router = APIRouter(prefix="/v1/suppliers/{supplier_id}", tags=["statements"])


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


@supplier_router.get(
    "/statements",
    response_model=Statement,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_statement(
    caller: OrdersReader,
    session: DbSession,
    since: Annotated[datetime, Query(description="Period start (inclusive, UTC).")],
    until: Annotated[datetime, Query(description="Period end (exclusive, UTC).")],
    statement_format: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Response:
    """Sales, refunds, commissions, platform fees, shipping and net payable for a period, line
    by line and per currency, from the same rows the ledger posts; as JSON or CSV."""
    result = await statements.statement(session, caller.supplier_id, since, until)
    if statement_format == "csv":
        return Response(statements.as_csv(result), media_type="text/csv; charset=utf-8")
    return Response(result.model_dump_json(), media_type="application/json")
