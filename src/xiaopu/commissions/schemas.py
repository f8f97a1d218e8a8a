"""Response bodies for the shopkeeper's wallet and commission lines."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from xiaopu.kit.schema import ResponseModel
from xiaopu.models.ledger import PartKind, PartStatus, Rule


class WalletBalance(ResponseModel):
    currency: str
    pending_minor: int = Field(description="Earned on paid orders still in their return window.")
    held_minor: int = Field(description="Self-purchases held for an operator's review.")
    available_minor: int = Field(description="Completed: yours to withdraw.")
    paid_minor: int = Field(description="Paid out to you so far.")
    negative_carry_minor: int = Field(
        description="Clawed back beyond your balance: later earnings cover it first."
    )


class CommissionHistoryOut(ResponseModel):
    action: str
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
