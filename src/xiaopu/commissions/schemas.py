"""Request and response bodies for commission lines, supplier statements and their exports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.models.ledger import CommissionAction, PartKind, PartStatus, Rule


class CommissionHistoryOut(ResponseModel):
    action: CommissionAction
    status: PartStatus
    amount_minor: int
    cause: str
    at: datetime


class CommissionOut(ResponseModel):
    """One thing the shop earns on one order line, with how it was worked out."""

    id: uuid.UUID
    order_id: uuid.UUID
    supplier_order_id: uuid.UUID
    order_line_id: uuid.UUID | None
    kind: PartKind
    currency: str
    base_minor: int = Field(description="What the rate was applied to (the markup for markup).")
    rate_bps: int | None
    rule: Rule
    rounding: str
    accrued_minor: int
    reversed_minor: int
    net_minor: int
    status: PartStatus
    created_at: datetime
    history: list[CommissionHistoryOut]


class StatementLine(ResponseModel):
    at: datetime
    kind: Literal["sale", "refund", "forfeit"] = Field(
        description="sale, refund, or forfeit: a held self-purchase's commission that an "
        "operator refused the shop, back with the supplier (commission down, net payable up)."
    )
    cause: str
    order_id: uuid.UUID
    supplier_order_id: uuid.UUID
    order_line_id: uuid.UUID | None = Field(description="Null on a shipping-only line.")
    sku: str | None
    currency: str
    sales_minor: int = Field(description="The base at the supplier's price (negative: refunded).")
    commission_minor: int
    platform_fee_minor: int
    shipping_minor: int
    net_payable_minor: int = Field(description="The supplier's share of the base on this line.")


class StatementTotals(ResponseModel):
    currency: str
    sales_minor: int = 0
    refunds_minor: int = 0
    commission_minor: int = 0
    platform_fee_minor: int = 0
    shipping_minor: int = 0
    net_payable_minor: int = Field(default=0, description="Shares plus shipping, net of refunds.")


class Statement(ResponseModel):
    supplier_id: uuid.UUID
    since: datetime
    until: datetime
    totals: list[StatementTotals] = Field(description="The whole period's, on every page.")
    lines: list[StatementLine] = Field(
        description="One page of the period's lines, by time, supplier order, order line."
    )
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page of lines; null at end."
    )


class HeldDecision(RequestModel):
    decision: Literal["release", "forfeit"]


class StatementExportIn(RequestModel):
    since: AwareDatetime = Field(description="Period start, inclusive (with a UTC offset).")
    until: AwareDatetime = Field(description="Period end, exclusive (with a UTC offset).")


class StatementExportOut(ResponseModel):
    id: uuid.UUID
    since: datetime
    until: datetime
    status: Literal["queued", "building", "ready", "failed", "expired"] = Field(
        description=(
            "queued, building, ready (download it until `expires_at`), failed (ask again), or "
            "expired (its CSV was deleted; ask again)."
        )
    )
    lines: int = Field(description="Lines written so far.")
    size_bytes: int
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="Until when a ready export is downloadable.")
