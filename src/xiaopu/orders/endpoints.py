"""Routes for checkout and buyers' orders, suppliers' fulfilment and returns, payment and carrier
callbacks, the sandbox pay step, and operators' return decisions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from xiaopu.auth.auth import CurrentOperator, CurrentPerson, OptionalPerson
from xiaopu.db import DbSession, Sessions
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import (
    OptionalIdempotency,
    RequiredIdempotency,
    RequiredKey,
    set_principal,
)
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.models import RefundStatus, ReturnStatus, SupplierOrderStatus
from xiaopu.orders import fulfilment, payments, placing, returns, service
from xiaopu.orders.auth import GuestToken, OrdersReader, OrdersWriter
from xiaopu.orders.schemas import (
    CallbackResult,
    Cancellation,
    CarrierEventResult,
    CheckoutIn,
    CheckoutOut,
    OperatorReturnDecision,
    OrderOut,
    PaymentOut,
    RefundOut,
    ReturnDecisionIn,
    ReturnOut,
    ReturnRequest,
    SandboxPay,
    SandboxPayResult,
    Shipment,
    ShopOrderOut,
    SupplierOrderOut,
)

router = APIRouter(prefix="/v1/orders", tags=["orders"])
shop_router = APIRouter(prefix="/v1/shops/mine/orders", tags=["shops"])
supplier_router = APIRouter(prefix="/v1/suppliers/{supplier_id}", tags=["fulfilment"])
payment_router = APIRouter(tags=["payments"])
carrier_router = APIRouter(prefix="/v1/carriers", tags=["carriers"])
operator_router = APIRouter(prefix="/v1/operator/returns", tags=["operator"])
operator_refunds_router = APIRouter(prefix="/v1/operator/refunds", tags=["operator"])

SIGNED_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "The provider's JSON, exactly as signed (Standard Webhooks headers).",
    }
}


# Buyers ------------------------------------------------------------------------------------


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="orders-checkout")
async def checkout(
    body: CheckoutIn,
    request: Request,
    person: OptionalPerson,
    settings: AppSettings,
    key: RequiredKey,
) -> CheckoutOut:
    """Order from one shop, signed in or as a guest. Prices are frozen, stock is reserved and
    the order waits for payment until it expires: the buyer pays through
    `POST /v1/orders/{order_id}/payment`."""
    if person is None:
        # Guests' keys are scoped to their phone, so one guest's key never replays another's.
        set_principal(request, f"guest:{body.address.phone}")
    account_id = person.account_id if person else None
    out, _ = await placing.place(request.app, settings, request, key, account_id, body)
    return out


@router.get("", operation_id="orders-list_my_orders")
async def list_my_orders(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[OrderOut]:
    """The signed-in buyer's orders, newest first."""
    return await service.list_for_buyer(session, person.account_id, page)


@router.get("/{order_id}", operation_id="orders-get_order")
async def get_order(
    order_id: uuid.UUID, person: OptionalPerson, session: DbSession, token: GuestToken = None
) -> OrderOut:
    """One of the buyer's orders, with each supplier order's status and tracking."""
    account_id = person.account_id if person else None
    return await service.get_for_buyer(session, order_id, account_id, token)


@router.post("/{order_id}/payment", operation_id="orders-open_payment")
async def open_payment(
    order_id: uuid.UUID,
    person: OptionalPerson,
    sessions: Sessions,
    settings: AppSettings,
    token: GuestToken = None,
) -> PaymentOut:
    """Pay for an order waiting for payment: the provider opens its payment, and `pay_url`
    says where the buyer completes it. Asking again answers the same payment (no
    Idempotency-Key needed); a concurrent ask gets 409 `payment_opening`, to retry."""
    account_id = person.account_id if person else None
    return await payments.open_payment(sessions, settings, order_id, account_id, token)


@router.post(
    "/{order_id}/returns", status_code=status.HTTP_201_CREATED, operation_id="orders-request_return"
)
async def request_return(
    order_id: uuid.UUID,
    body: ReturnRequest,
    request: Request,
    person: OptionalPerson,
    session: DbSession,
    idempotency: OptionalIdempotency,
    token: GuestToken = None,
) -> ReturnOut:
    """Ask to return units of a delivered line, within its return window."""
    if person is None:
        # A guest's keys are scoped to their order token, so no one else can replay them.
        set_principal(request, f"guest-order:{service.hash_access_token(token or '').hex()}")
    account_id = person.account_id if person else None
    return await idempotency.once(
        lambda: returns.request_return(session, order_id, account_id, token, body)
    )


@router.get("/{order_id}/returns", operation_id="orders-list_order_returns")
async def list_order_returns(
    order_id: uuid.UUID, person: OptionalPerson, session: DbSession, token: GuestToken = None
) -> list[ReturnOut]:
    account_id = person.account_id if person else None
    return await returns.list_for_buyer(session, order_id, account_id, token)


# Shopkeepers -------------------------------------------------------------------------------


@shop_router.get("", operation_id="shops-list_shop_orders")
async def list_shop_orders(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[ShopOrderOut]:
    """Orders placed in the caller's shop (without the buyers' contact details)."""
    return await service.list_for_shop(session, person.account_id, page)


# Suppliers ---------------------------------------------------------------------------------


@supplier_router.get("/orders", operation_id="fulfilment-list_supplier_orders")
async def list_supplier_orders(
    caller: OrdersReader,
    session: DbSession,
    page: Pagination,
    order_status: Annotated[SupplierOrderStatus | None, Query(alias="status")] = None,
) -> Page[SupplierOrderOut]:
    """The supplier's orders, newest first; without `status`, only paid ones onwards."""
    return await fulfilment.list_orders(session, caller.supplier_id, order_status, page)


@supplier_router.get("/orders/{supplier_order_id}", operation_id="fulfilment-get_supplier_order")
async def get_supplier_order(
    supplier_order_id: uuid.UUID, caller: OrdersReader, session: DbSession
) -> SupplierOrderOut:
    return await fulfilment.get_order(session, caller.supplier_id, supplier_order_id)


@supplier_router.post(
    "/orders/{supplier_order_id}/accept", operation_id="fulfilment-accept_supplier_order"
)
async def accept_supplier_order(
    supplier_order_id: uuid.UUID,
    caller: OrdersWriter,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> SupplierOrderOut:
    return await idempotency.once(
        lambda: fulfilment.accept(session, caller.supplier_id, supplier_order_id)
    )


@supplier_router.post(
    "/orders/{supplier_order_id}/ship", operation_id="fulfilment-ship_supplier_order"
)
async def ship_supplier_order(
    supplier_order_id: uuid.UUID,
    body: Shipment,
    caller: OrdersWriter,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> SupplierOrderOut:
    return await idempotency.once(
        lambda: fulfilment.ship(session, caller.supplier_id, supplier_order_id, body)
    )


@supplier_router.post(
    "/orders/{supplier_order_id}/deliver", operation_id="fulfilment-deliver_supplier_order"
)
async def deliver_supplier_order(
    supplier_order_id: uuid.UUID,
    caller: OrdersWriter,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> SupplierOrderOut:
    """Mark delivered (a carrier's callback can do it too); the return windows open."""
    return await idempotency.once(
        lambda: fulfilment.deliver(session, caller.supplier_id, supplier_order_id)
    )


@supplier_router.post(
    "/orders/{supplier_order_id}/cancel", operation_id="fulfilment-cancel_supplier_order"
)
async def cancel_supplier_order(
    supplier_order_id: uuid.UUID,
    body: Cancellation,
    caller: OrdersWriter,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> SupplierOrderOut:
    """Cancel before shipping: the buyer is refunded in full for this supplier order."""
    return await idempotency.once(
        lambda: fulfilment.cancel(session, caller.supplier_id, supplier_order_id, body)
    )


@supplier_router.get("/returns", operation_id="fulfilment-list_supplier_returns")
async def list_supplier_returns(
    caller: OrdersReader,
    session: DbSession,
    page: Pagination,
    return_status: Annotated[ReturnStatus | None, Query(alias="status")] = None,
) -> Page[ReturnOut]:
    return await returns.list_for_supplier(session, caller.supplier_id, return_status, page)


@supplier_router.post("/returns/{return_id}/approve", operation_id="fulfilment-approve_return")
async def approve_return(
    return_id: uuid.UUID,
    body: ReturnDecisionIn,
    caller: OrdersWriter,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> ReturnOut:
    """Approve: the units are refunded (with shipping, once the whole supplier order is back)."""
    return await idempotency.once(
        lambda: returns.supplier_decides(session, caller.supplier_id, return_id, True, body)
    )


@supplier_router.post("/returns/{return_id}/reject", operation_id="fulfilment-reject_return")
async def reject_return(
    return_id: uuid.UUID,
    body: ReturnDecisionIn,
    caller: OrdersWriter,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> ReturnOut:
    return await idempotency.once(
        lambda: returns.supplier_decides(session, caller.supplier_id, return_id, False, body)
    )


# Operators ---------------------------------------------------------------------------------


@operator_router.get("", operation_id="operator-list_returns_for_operator")
async def list_returns_for_operator(
    operator: CurrentOperator,
    session: DbSession,
    page: Pagination,
    return_status: Annotated[ReturnStatus | None, Query(alias="status")] = None,
) -> Page[ReturnOut]:
    return await returns.list_for_operator(session, return_status, page)


@operator_router.post("/{return_id}/decide", operation_id="operator-decide_return")
async def decide_return(
    return_id: uuid.UUID,
    body: OperatorReturnDecision,
    operator: CurrentOperator,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> ReturnOut:
    """Decide an open return, or overrule a supplier's rejection."""
    return await idempotency.once(
        lambda: returns.operator_decides(session, return_id, body, operator_id=operator.account_id)
    )


@operator_refunds_router.get("", operation_id="operator-list_refunds_for_operator")
async def list_refunds_for_operator(
    operator: CurrentOperator,
    session: DbSession,
    page: Pagination,
    refund_status: Annotated[RefundStatus | None, Query(alias="status")] = None,
) -> Page[RefundOut]:
    """Refunds, newest first; `status=failed` lists those the provider refused."""
    return await payments.list_refunds(session, refund_status, page)


@operator_refunds_router.post("/{refund_id}/retry", operation_id="operator-retry_refund")
async def retry_refund(
    refund_id: uuid.UUID,
    operator: CurrentOperator,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> RefundOut:
    """Send a refund the provider refused once more."""
    return await idempotency.once(
        lambda: payments.retry_refund(session, refund_id, operator_id=operator.account_id)
    )


# Providers' callbacks and the sandbox ------------------------------------------------------


@payment_router.post(
    "/v1/payments/{provider}/callbacks",
    openapi_extra=SIGNED_BODY,
    operation_id="payments-payment_callback",
)
async def payment_callback(
    provider: Annotated[str, Path(pattern=r"^[a-z0-9_]{1,32}$")],
    request: Request,
    session: DbSession,
    settings: AppSettings,
) -> CallbackResult:
    """A payment provider's signed callback (paid, failed, refunded). Applied once per event
    id, however often and however concurrently it arrives."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    body = await request.body()
    return await payments.handle_callback(session, settings, provider, headers, body)


@carrier_router.post(
    "/callbacks", openapi_extra=SIGNED_BODY, operation_id="carriers-carrier_callback"
)
async def carrier_callback(
    request: Request, session: DbSession, settings: AppSettings
) -> CarrierEventResult:
    """A carrier's signed delivery notice for a tracking number."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    body = await request.body()
    event = fulfilment.verify_carrier_callback(settings, headers, body)
    return await fulfilment.carrier_delivered(session, event)


@payment_router.post("/v1/sandbox/payments/{provider_ref}/pay", operation_id="payments-sandbox_pay")
async def sandbox_pay(
    provider_ref: Annotated[str, Path(max_length=128)],
    session: DbSession,
    settings: AppSettings,
    body: SandboxPay | None = None,
) -> SandboxPayResult:
    """Development and tests: pay (or fail to pay) as a buyer would at the sandbox provider,
    which then sends us its signed callback. Not available in production."""
    outcome = (body or SandboxPay()).outcome
    return await payments.sandbox_pay(session, settings, provider_ref, outcome)
