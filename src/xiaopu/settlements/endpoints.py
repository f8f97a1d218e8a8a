"""Routes for a supplier's balance, settlements (JSON or CSV) and payout retries."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from xiaopu.auth.auth import CurrentOperator
from xiaopu.db import DbSession, Sessions
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import RequiredIdempotency
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.settlements import service
from xiaopu.settlements.auth import SettlementsOwner, SettlementsReader
from xiaopu.settlements.schemas import (
    SettlementDetail,
    SettlementOut,
    SupplierBalance,
    SupplierPayoutOut,
)

router = APIRouter(prefix="/v1/suppliers/{supplier_id}", tags=["settlements"])
operator_router = APIRouter(prefix="/v1/operator/settlement-payouts", tags=["operator"])

DEFAULT_LINES_PAGE = 100
MAX_LINES_PAGE = 500


@router.get("/balance", operation_id="settlements-get_balance")
async def get_balance(
    supplier_id: uuid.UUID, caller: SettlementsReader, session: DbSession
) -> list[SupplierBalance]:
    """What the platform owes, per currency: pending, payable, in settlement, paid, and any
    negative carry from refunds after completion."""
    return await service.balances(session, caller.supplier_id)


@router.get("/settlements", operation_id="settlements-list_settlements")
async def list_settlements(
    supplier_id: uuid.UUID, caller: SettlementsReader, session: DbSession, page: Pagination
) -> Page[SettlementOut]:
    """Closed settlement periods, newest first, with their payouts."""
    return await service.list_settlements(session, caller.supplier_id, page)


@router.get(
    "/settlements/{settlement_id}",
    response_model=SettlementDetail,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    operation_id="settlements-get_settlement",
)
async def get_settlement(
    supplier_id: uuid.UUID,
    settlement_id: uuid.UUID,
    caller: SettlementsReader,
    session: DbSession,
    sessions: Sessions,
    settings: AppSettings,
    settlement_format: Annotated[
        Literal["json", "csv"] | None,
        Query(alias="format", description="csv, or send `Accept: text/csv`."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LINES_PAGE, description="Lines per page (JSON).")
    ] = DEFAULT_LINES_PAGE,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """One statement with its totals, as JSON with a page of its lines (`cursor` continues),
    or as CSV with every line, streamed (amounts in minor units and, for people, in major
    units)."""
    wants_csv = settlement_format == "csv" or (
        settlement_format is None and accept is not None and "text/csv" in accept
    )
    detail = await service.get_settlement(
        session, caller.supplier_id, settlement_id, cursor=cursor, limit=limit
    )
    if wants_csv:
        return StreamingResponse(
            service.settlement_csv(sessions, detail, settings),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="settlement-{detail.number}-{detail.currency}.csv"'
                )
            },
        )
    return Response(detail.model_dump_json(), media_type="application/json")


@router.post(
    "/settlement-payouts/{payout_id}/retry", operation_id="settlements-retry_settlement_payout"
)
async def retry_settlement_payout(
    supplier_id: uuid.UUID,
    payout_id: uuid.UUID,
    caller: SettlementsOwner,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> SupplierPayoutOut:
    """Send a failed payout again (for example after fixing the payout details): the next
    payout run pays it. Owners only."""
    return await idempotency.once(
        lambda: service.retry_payout(session, caller.supplier_id, payout_id)
    )


@operator_router.post("/{payout_id}/retry", operation_id="operator-retry_supplier_payout")
async def retry_supplier_payout(
    payout_id: uuid.UUID,
    operator: CurrentOperator,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> SupplierPayoutOut:
    """Send any supplier's failed payout again: the next payout run pays it."""
    return await idempotency.once(
        lambda: service.retry_payout(session, None, payout_id, operator_id=operator.account_id)
    )
