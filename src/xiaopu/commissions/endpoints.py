"""Routes for the shopkeeper's commission lines and suppliers' statements."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from xiaopu.auth.auth import CurrentOperator, CurrentPerson
from xiaopu.commissions import exports, service, statements
from xiaopu.commissions.auth import StatementsReader
from xiaopu.commissions.schemas import (
    CommissionOut,
    HeldDecision,
    Statement,
    StatementExportIn,
    StatementExportOut,
)
from xiaopu.db import DbSession, Sessions
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import OptionalIdempotency, RequiredIdempotency
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.models.ledger import PartStatus

router = APIRouter(prefix="/v1/shops/mine", tags=["wallet"])
operator_router = APIRouter(prefix="/v1/operator/commissions", tags=["operator"])
supplier_router = APIRouter(prefix="/v1/suppliers/{supplier_id}", tags=["statements"])

DEFAULT_STATEMENT_PAGE = 100
MAX_STATEMENT_PAGE = 500


@router.get("/commissions", operation_id="wallet-list_commissions")
async def list_commissions(
    person: CurrentPerson,
    session: DbSession,
    page: Pagination,
    commission_status: Annotated[PartStatus | None, Query(alias="status")] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Created at or after (with a UTC offset).")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Created before (with a UTC offset).")
    ] = None,
) -> Page[CommissionOut]:
    """Every commission and markup line, newest first, with how it was computed and each change."""
    return await service.list_for_shop(
        session, person.account_id, commission_status, since, until, page
    )


@supplier_router.get(
    "/statements",
    response_model=Statement,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        413: {"description": "More lines than answered inline (`statement_too_large`)."},
    },
    operation_id="statements-get_statement",
)
async def get_statement(
    caller: StatementsReader,
    session: DbSession,
    settings: AppSettings,
    since: Annotated[
        AwareDatetime, Query(description="Period start, inclusive (with a UTC offset).")
    ],
    until: Annotated[
        AwareDatetime, Query(description="Period end, exclusive (with a UTC offset).")
    ],
    statement_format: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    limit: Annotated[
        int, Query(ge=1, le=MAX_STATEMENT_PAGE, description="Lines per page (JSON).")
    ] = DEFAULT_STATEMENT_PAGE,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> Response:
    """Sales, refunds, commissions, platform fees, shipping and net payable for a period, line
    by line and per currency, from the same rows the ledger posts. JSON: a page of lines (by
    time; `cursor` continues) with the whole period's totals. CSV: every line of the period.
    A period of more lines than `XIAOPU_STATEMENT_INLINE_MAX_LINES` is refused with 413
    `statement_too_large`: request it as an export (`POST .../statements/exports`)."""
    most = settings.statement_inline_max_lines
    if statement_format == "csv":
        text = await statements.inline_csv(session, caller.supplier_id, since, until, most=most)
        return Response(text, media_type="text/csv; charset=utf-8")
    result = await statements.page(
        session, caller.supplier_id, since, until, cursor=cursor, limit=limit, most=most
    )
    return Response(result.model_dump_json(), media_type="application/json")


@supplier_router.post(
    "/statements/exports",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="statements-request_export",
)
async def request_export(
    caller: StatementsReader,
    session: DbSession,
    settings: AppSettings,
    body: StatementExportIn,
    idempotency: OptionalIdempotency,
) -> StatementExportOut:
    """Ask for a period's statement as CSV, however long: the worker builds it in the
    background; poll the export and download it once `ready` (until it expires). A retry with
    the same Idempotency-Key answers the same export."""
    most = settings.statement_exports_pending_max
    return await idempotency.once(
        lambda: exports.request_export(session, caller.supplier_id, body, most_pending=most)
    )


@supplier_router.get("/statements/exports/{export_id}", operation_id="statements-get_export")
async def get_export(
    export_id: uuid.UUID, caller: StatementsReader, session: DbSession
) -> StatementExportOut:
    """An export's status and size so far."""
    return await exports.export_status(session, caller.supplier_id, export_id)


@supplier_router.get(
    "/statements/exports/{export_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        410: {"description": "The export's retention ended (`statement_export_expired`)."},
    },
    operation_id="statements-download_export",
)
async def download_export(
    export_id: uuid.UUID, caller: StatementsReader, session: DbSession, sessions: Sessions
) -> StreamingResponse:
    """The ready export's CSV, streamed chunk by chunk (409 until it is ready, 410 once it
    expired)."""
    export = await exports.ready_export(session, caller.supplier_id, export_id)
    name = f"statement-{export.since:%Y%m%d}-{export.until:%Y%m%d}.csv"
    return StreamingResponse(
        exports.chunks(sessions, export.id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@operator_router.get("/held", operation_id="operator-list_held_commissions")
async def list_held_commissions(
    operator: CurrentOperator, session: DbSession, page: Pagination
) -> Page[CommissionOut]:
    """Self-purchase earnings held for review (policy `hold`), newest first."""
    return await service.list_held(session, page)


@operator_router.post("/held/{supplier_order_id}", operation_id="operator-decide_held_commissions")
async def decide_held_commissions(
    supplier_order_id: uuid.UUID,
    body: HeldDecision,
    operator: CurrentOperator,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> list[CommissionOut]:
    """Release a supplier order's held earnings to the shop, or forfeit them."""
    return await idempotency.once(
        lambda: service.decide_held(
            session, supplier_order_id, body, operator_id=operator.account_id
        )
    )
