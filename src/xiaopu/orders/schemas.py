"""Request and response bodies for checkout, orders, fulfilment, payments and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from xiaopu.kit.contact import normalize_phone
from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.kit.text import DisplayName
from xiaopu.models import (
    Attribution,
    Decider,
    OrderStatus,
    PaymentStatus,
    RefundReason,
    RefundStatus,
    ReturnStatus,
    SupplierOrderStatus,
)

Text = Annotated[str, Field(min_length=1, pattern=r"\S")]
Phone = Annotated[str, Field(max_length=32), AfterValidator(normalize_phone)]


class Address(RequestModel):
    recipient: DisplayName = Field(min_length=1, max_length=80, pattern=r"\S")
    phone: Phone = Field(description="The recipient's phone; guests are reached on it.")
    country: str = Field(default="CN", pattern=r"^[A-Z]{2}$", description="ISO 3166 code.")
    province: str = Field(min_length=1, max_length=40, pattern=r"\S")
    city: str = Field(min_length=1, max_length=40, pattern=r"\S")
    district: str | None = Field(default=None, max_length=40)
    line1: str = Field(min_length=1, max_length=200, pattern=r"\S", description="Street, number.")
    line2: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=16, pattern=r"^[0-9A-Za-z -]+$")


class CheckoutItem(RequestModel):
    variant_id: uuid.UUID
    quantity: int = Field(ge=1, description="Units; at most the `max_line_quantity` setting.")


class CheckoutIn(RequestModel):
    shop_slug: str = Field(min_length=3, max_length=64)
    items: list[CheckoutItem] = Field(min_length=1)
    address: Address
    attribution_token: str | None = Field(
        default=None, max_length=200, description="The `xp_at` token the share link carried."
    )
    note: str | None = Field(default=None, max_length=500)


class LineOut(ResponseModel):
    id: uuid.UUID
    product_id: uuid.UUID
    variant_id: uuid.UUID
    sku: str
    title: str
    options: dict[str, Any]
    quantity: int
    returned_quantity: int
    currency: str
    unit_price_minor: int = Field(description="What the buyer pays per unit (markup included).")
    total_minor: int
    campaign_id: uuid.UUID | None = Field(
        default=None, description="The campaign whose price the line was sold at."
    )


class ShopLineOut(LineOut):
    """A line as its shop sees it: with the campaign boost it earns, if any."""

    boost_bps: int = Field(description="The campaign's boost on this line (0: none).")
    boost_withheld: bool = Field(
        description="Sold at the campaign price without a boost: the budget could not cover it."
    )


class SupplierOrderSummary(ResponseModel):
    id: uuid.UUID
    supplier_id: uuid.UUID
    status: SupplierOrderStatus
    currency: str
    items_minor: int
    shipping_minor: int
    total_minor: int
    refunded_minor: int
    carrier: str | None
    tracking_number: str | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    return_closes_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    lines: list[LineOut]


class PaymentOut(ResponseModel):
    provider: str
    provider_ref: str = Field(
        description="The merchant reference the provider files the payment under."
    )
    status: PaymentStatus
    amount_minor: int
    currency: str
    pay_url: str | None = Field(
        default=None,
        description="Where the buyer pays: null until they ask to pay "
        "(POST /v1/orders/{order_id}/payment), which opens the payment at the provider.",
    )
    paid_at: datetime | None


class OrderOut(ResponseModel):
    id: uuid.UUID
    shop_id: uuid.UUID
    status: OrderStatus
    currency: str
    items_minor: int
    shipping_minor: int
    total_minor: int
    refunded_minor: int
    address: dict[str, Any]
    note: str | None
    attribution: Attribution
    self_purchase: bool
    expires_at: datetime
    paid_at: datetime | None
    created_at: datetime
    supplier_orders: list[SupplierOrderSummary]
    payment: PaymentOut | None


class CheckoutOut(OrderOut):
    access_token: str | None = Field(
        default=None,
        description=(
            "Guests only, shown once: send it as `X-Order-Token` to read this order and ask "
            "for returns."
        ),
    )


class ShopOrderOut(ResponseModel):
    """An order in the caller's shop; buyers' contact details are not shown to shopkeepers."""

    id: uuid.UUID
    status: OrderStatus
    currency: str
    items_minor: int
    total_minor: int
    refunded_minor: int
    attribution: Attribution
    link_id: uuid.UUID | None
    self_purchase: bool
    created_at: datetime
    paid_at: datetime | None
    lines: list[ShopLineOut]


class SupplierLineOut(ResponseModel):
    id: uuid.UUID
    product_id: uuid.UUID
    variant_id: uuid.UUID
    sku: str
    title: str
    options: dict[str, Any]
    quantity: int
    returned_quantity: int
    unit_price_minor: int = Field(description="The supplier's price per unit.")
    base_minor: int
    commission_bps: int
    platform_fee_bps: int
    return_window_days: int
    campaign_id: uuid.UUID | None = Field(description="Sold at this campaign's price.")
    boost_bps: int = Field(description="The campaign boost paid on the line (0: none).")
    boost_withheld: bool = Field(description="Sold without a boost: the budget was spent.")


class SupplierOrderOut(ResponseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    status: SupplierOrderStatus
    currency: str
    items_minor: int
    shipping_minor: int
    total_minor: int
    refunded_minor: int
    address: dict[str, Any]
    note: str | None
    carrier: str | None
    tracking_number: str | None
    cancel_reason: str | None
    paid_at: datetime | None
    accepted_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    return_closes_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    lines: list[SupplierLineOut]


class Shipment(RequestModel):
    carrier: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    tracking_number: str = Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9-]+$")


class Cancellation(RequestModel):
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")


class CarrierEvent(RequestModel):
    carrier: str = Field(min_length=1, max_length=40)
    tracking_number: str = Field(min_length=4, max_length=64)
    status: Literal["delivered"]


class CarrierEventResult(ResponseModel):
    supplier_order_ids: list[uuid.UUID]


class SandboxPay(RequestModel):
    outcome: Literal["paid", "failed"] = "paid"


class SignedCallback(ResponseModel):
    headers: dict[str, str]
    body: str


class SandboxPayResult(ResponseModel):
    """What the sandbox did: the callback it signed and sent us, and our answer to it."""

    callback: SignedCallback
    result: CallbackResult


class CallbackResult(ResponseModel):
    outcome: str = Field(description="applied, duplicate, refunding_expired_order, ...")


class ReturnRequest(RequestModel):
    line_id: uuid.UUID
    quantity: int = Field(ge=1, le=100_000)
    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


class ReturnDecisionIn(RequestModel):
    note: str | None = Field(default=None, max_length=500)
    restock: bool = Field(default=False, description="Put the returned units back in stock.")


class OperatorReturnDecision(ReturnDecisionIn):
    decision: Literal["approve", "reject"]


class RefundOut(ResponseModel):
    id: uuid.UUID
    reason: RefundReason
    status: RefundStatus
    amount_minor: int
    shipping_minor: int
    currency: str
    succeeded_at: datetime | None


class ReturnOut(ResponseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    supplier_order_id: uuid.UUID
    line_id: uuid.UUID
    quantity: int
    reason: str
    status: ReturnStatus
    decided_by: Decider | None
    decision_note: str | None
    restock: bool
    created_at: datetime
    decided_at: datetime | None
    refund: RefundOut | None


SandboxPayResult.model_rebuild()
