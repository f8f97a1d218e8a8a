"""Response bodies for supplier balances, settlements and their lines, and supplier payouts."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field

from xiaopu.kit.schema import ResponseModel
from xiaopu.models.settlements import SettlementLineKind, SupplierPayoutStatus


class SupplierBalance(ResponseModel):
    currency: str
    pending_minor: int = Field(description="Owed on paid orders still in their return window.")
    payable_minor: int = Field(description="Completed, not yet in a settlement.")
    in_settlement_minor: int = Field(
        description="Frozen into settlements, waiting for (or retrying) their payout."
    )
    paid_minor: int = Field(description="Paid out to you so far.")
    negative_carry_minor: int = Field(
        description="Refunds after completion beyond what was payable: the next settlements "
        "net it off before paying."
    )


class SupplierPayoutOut(ResponseModel):
    id: uuid.UUID
    settlement_id: uuid.UUID
    currency: str
    amount_minor: int
    status: SupplierPayoutStatus
    attempts: int
    provider_ref: str | None
    failure_reason: str | None
    created_at: datetime
    paid_at: datetime | None


class SettlementOut(ResponseModel):
    id: uuid.UUID
    supplier_id: uuid.UUID
    number: int = Field(description="The supplier's statement number: 1, 2, 3, ... without gaps.")
    currency: str
    period: str = Field(description="daily, weekly or monthly.")
    first_day: date = Field(description="First local day of the period (platform time zone).")
    last_day: date = Field(description="Last local day of the period.")
    period_start: datetime = Field(description="The first day's local midnight, in UTC.")
    period_end: datetime = Field(description="The local midnight after the last day, in UTC.")
    line_count: int
    sales_minor: int = Field(description="Sales completed, at the supplier's price.")
    refunds_minor: int = Field(description="Sales refunded after completion.")
    commission_minor: int = Field(description="Commissions to shopkeepers, net of refunds.")
    platform_fee_minor: int
    shipping_minor: int
    other_minor: int = Field(description="Other movements (none in the normal course).")
    lines_net_minor: int = Field(description="What the lines add up to.")
    carry_in_minor: int = Field(description="The previous statement's negative carry (≤ 0).")
    net_minor: int = Field(description="carry_in + lines_net: what the period leaves owed.")
    payout_minor: int = Field(description="Paid out for this statement: the net if positive.")
    carry_out_minor: int = Field(description="Carried to the next statement: the net if negative.")
    created_at: datetime
    payout: SupplierPayoutOut | None = None


class SettlementLineOut(ResponseModel):
    id: uuid.UUID
    kind: SettlementLineKind
    source: str = Field(description="`completion:{supplier_order}` or the ledger cause.")
    at: datetime = Field(description="When the movement happened (completion, refund).")
    order_id: uuid.UUID | None
    supplier_order_id: uuid.UUID | None
    sales_minor: int
    commission_minor: int
    platform_fee_minor: int
    shipping_minor: int
    other_minor: int
    net_minor: int = Field(
        description="sales − commission − platform_fee + shipping + other: this line's movement "
        "of what you are owed, exactly as the ledger posted it."
    )


class SettlementDetail(SettlementOut):
    lines: list[SettlementLineOut] = Field(
        default_factory=list,
        description="A page of the lines, in order of time (`line_count` says how many in all).",
    )
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page of lines; null at the end."
    )
