"""Suppliers fulfil their supplier orders: accept, ship, deliver or cancel; carriers confirm
delivery; a scheduled job completes orders whose return window has closed."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from xiaopu.commissions import service as commissions
from xiaopu.config import Settings
from xiaopu.errors import Conflict, NotFound, ValidationFailed
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.models import (
    OrderLine,
    RefundReason,
    SupplierOrder,
    SupplierOrderStatus,
)
from xiaopu.orders import payments, repository, service
from xiaopu.orders.events import supplier_order_event
from xiaopu.orders.providers import InvalidCallbackSignature
from xiaopu.orders.schemas import (
    Cancellation,
    CarrierEvent,
    CarrierEventResult,
    Shipment,
    SupplierLineOut,
    SupplierOrderOut,
)
from xiaopu.shops import service as shops
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

# Supplier orders a run of the completion job completes in one transaction (it runs again
# while they fill it).
COMPLETION_BATCH = 2000
S = SupplierOrderStatus


class SupplierOrderNotFound(NotFound):
    code = "supplier_order_not_found"
    title = "Supplier order not found"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "The supplier order is not in a state that allows this"

    def __init__(self, part: SupplierOrder, action: str) -> None:
        super().__init__(
            f"Cannot {action} a supplier order that is {part.status}.",
            extra={"current_status": str(part.status)},
        )


class ShipmentUnknown(NotFound):
    code = "shipment_not_found"
    title = "No shipped supplier order has this carrier and tracking number"


_PART_FIELDS = [f for f in SupplierOrderOut.model_fields if f not in {"address", "note", "lines"}]


def _line_out(line: OrderLine) -> SupplierLineOut:
    return SupplierLineOut(
        id=line.id,
        product_id=line.product_id,
        variant_id=line.variant_id,
        sku=line.sku,
        title=line.title,
        options=line.options,
        quantity=line.quantity,
        returned_quantity=line.returned_quantity,
        unit_price_minor=line.unit_price_minor,
        base_minor=line.base_minor,
        commission_bps=line.commission_bps,
        platform_fee_bps=line.platform_fee_bps,
        return_window_days=line.return_window_days,
        campaign_id=line.campaign_id,
        boost_bps=line.boost_bps,
        boost_withheld=line.boost_withheld,
    )


async def _out(session: AsyncSession, parts: Sequence[SupplierOrder]) -> list[SupplierOrderOut]:
    if not parts:
        return []
    lines: dict[uuid.UUID, list[SupplierLineOut]] = defaultdict(list)
    for line in await repository.lines_of_supplier_orders(session, [p.id for p in parts]):
        lines[line.supplier_order_id].append(_line_out(line))
    orders = {o.id: o for o in await repository.orders_by_id(session, {p.order_id for p in parts})}
    out = []
    for part in parts:
        order = orders[part.order_id]
        fields = {name: getattr(part, name) for name in _PART_FIELDS}
        fields.update(address=order.address, note=order.note, lines=lines[part.id])
        out.append(SupplierOrderOut(**fields))
    return out


async def list_orders(
    session: AsyncSession, supplier_id: uuid.UUID, status: S | None, page: PageParams
) -> Page[SupplierOrderOut]:
    """A supplier's orders, newest first. Unpaid ones are listed only when asked for by status:
    there is nothing to fulfil yet."""
    stmt = repository.supplier_orders(supplier_id)
    if status is None:
        stmt = stmt.where(SupplierOrder.status.not_in([S.pending_payment, S.expired]))
    rows = await repository.page_of_supplier_orders(session, stmt, page, status)
    items, cursor = id_page(rows, page, lambda p: p.id)
    return Page[SupplierOrderOut](items=await _out(session, items), next_cursor=cursor)


async def _part(
    session: AsyncSession, supplier_id: uuid.UUID, part_id: uuid.UUID, *, lock: bool = False
) -> SupplierOrder:
    part = await repository.one_supplier_order(
        session, repository.supplier_orders(supplier_id), part_id, lock=lock
    )
    if part is None:
        raise SupplierOrderNotFound()
    return part


async def get_order(
    session: AsyncSession, supplier_id: uuid.UUID, part_id: uuid.UUID
) -> SupplierOrderOut:
    (out,) = await _out(session, [await _part(session, supplier_id, part_id)])
    return out


async def _emit(session: AsyncSession, event: EventType, part: SupplierOrder) -> None:
    await webhooks.emit(session, event, part.supplier_id, supplier_order_event(part))


async def accept(
    session: AsyncSession, supplier_id: uuid.UUID, part_id: uuid.UUID
) -> SupplierOrderOut:
    part = await _part(session, supplier_id, part_id, lock=True)
    if part.status is not S.paid:
        raise InvalidTransition(part, "accept")
    part.status = S.accepted
    part.accepted_at = utcnow()
    await session.flush()
    await _emit(session, EventType.supplier_order_accepted, part)
    return await get_order(session, supplier_id, part_id)


async def ship(
    session: AsyncSession, supplier_id: uuid.UUID, part_id: uuid.UUID, data: Shipment
) -> SupplierOrderOut:
    part = await _part(session, supplier_id, part_id, lock=True)
    if part.status not in (S.paid, S.accepted):
        raise InvalidTransition(part, "ship")
    now = utcnow()
    part.accepted_at = part.accepted_at or now
    part.status = S.shipped
    part.shipped_at = now
    part.carrier = data.carrier.lower()
    part.tracking_number = data.tracking_number
    await session.flush()
    await _emit(session, EventType.supplier_order_shipped, part)
    return await get_order(session, supplier_id, part_id)


async def _deliver(session: AsyncSession, part: SupplierOrder) -> None:
    """Mark a shipped supplier order delivered (locked by the caller): its return windows open."""
    now = utcnow()
    lines = await repository.lines_of_supplier_orders(session, [part.id])
    part.status = S.delivered
    part.delivered_at = now
    part.return_closes_at = now + timedelta(days=max(ln.return_window_days for ln in lines))
    await session.flush()
    await _emit(session, EventType.supplier_order_delivered, part)


async def deliver(
    session: AsyncSession, supplier_id: uuid.UUID, part_id: uuid.UUID
) -> SupplierOrderOut:
    part = await _part(session, supplier_id, part_id, lock=True)
    if part.status is not S.shipped:
        raise InvalidTransition(part, "mark delivered")
    await _deliver(session, part)
    return await get_order(session, supplier_id, part_id)


async def cancel(
    session: AsyncSession, supplier_id: uuid.UUID, part_id: uuid.UUID, data: Cancellation
) -> SupplierOrderOut:
    """Cancel before shipping: the buyer gets back everything paid for this supplier order,
    and its units go back in stock."""
    part = await _part(session, supplier_id, part_id)
    order = await repository.one(session, repository.any_orders(), part.order_id, lock=True)
    if order is None:
        raise RuntimeError(f"supplier order {part.id} has no order")  # a foreign key
    part = await _part(session, supplier_id, part_id, lock=True)  # lock order, then part
    if part.status not in (S.paid, S.accepted):
        raise InvalidTransition(part, "cancel")
    part.status = S.cancelled
    part.cancelled_at = utcnow()
    part.cancel_reason = data.reason
    lines = await repository.lines_of_supplier_orders(session, [part.id], lock=True)
    refunded: dict[uuid.UUID, tuple[int, int]] = {}
    for line in lines:
        units = line.quantity - line.returned_quantity
        if units:
            refunded[line.id] = (units, (line.unit_price_minor + line.unit_markup_minor) * units)
            line.returned_quantity = line.quantity
    shipping = 0 if part.shipping_refunded else part.shipping_minor
    if refunded or shipping:
        await payments.refund_part(
            session, order, part, RefundReason.supplier_cancelled, refunded, shipping
        )
    await service.give_back(
        session, [(ln, refunded[ln.id][0], True) for ln in lines if ln.id in refunded]
    )
    await session.flush()
    await _emit(session, EventType.supplier_order_cancelled, part)
    return await get_order(session, supplier_id, part_id)


def verify_carrier_callback(
    settings: Settings, headers: dict[str, str], body: bytes
) -> CarrierEvent:
    try:
        Webhook(settings.carrier_callback_secret.get_secret_value()).verify(
            body, headers, json_parse=False
        )
    except (WebhookVerificationError, ValueError) as exc:
        raise InvalidCallbackSignature() from exc
    try:
        return CarrierEvent.model_validate_json(body)
    except ValidationError as exc:
        raise ValidationFailed("The carrier event is not one we understand.") from exc


async def carrier_delivered(session: AsyncSession, data: CarrierEvent) -> CarrierEventResult:
    """A carrier's (signed) delivery notice. Repeats are harmless: delivered stays delivered."""
    parts = await repository.supplier_orders_by_tracking(
        session, data.carrier.lower(), data.tracking_number
    )
    if not parts:
        raise ShipmentUnknown()
    for part in parts:
        if part.status is S.shipped:
            await _deliver(session, part)
    return CarrierEventResult(supplier_order_ids=[p.id for p in parts])


# Completion ----------------------------------------------------------------------------------


async def complete_due(session: AsyncSession, settings: Settings) -> int:
    """Complete one batch of delivered supplier orders whose return window has closed with no
    open return: their commissions released, one supplier_order.completed each, and their
    orders counted as completed sales. Returns how many; a full batch means more may be due
    (the job runs again). A handful of statements whatever the batch size.

    A buyer order counts once toward its shop's completed sales, when the first of its
    supplier orders completes with at least one unit kept (not returned); returns.py takes it
    back if an overruled return later brings back the last unit its completed ones kept."""
    now = utcnow()
    parts = await repository.complete_due(session, now, COMPLETION_BATCH)
    if not parts:
        return 0
    # Every shop of the batch has its accounts locked here, before its row is: two batches
    # counting for one shop queue at these locks, never at the shops' rows.
    # The shops' organisations' accounts too: their overrides accrue with the release.
    await commissions.lock_for(session, parts, completion=True)
    await commissions.release(session, parts, settings.zone)
    lines: dict[uuid.UUID, list[OrderLine]] = defaultdict(list)
    for line in await repository.event_lines(session, [p.id for p in parts]):
        lines[line.supplier_order_id].append(line)
    await webhooks.emit_many(
        session,
        EventType.supplier_order_completed,
        [(p.supplier_id, supplier_order_event(p, lines[p.id])) for p in parts],
    )
    kept = {
        p.order_id for p in parts if any(ln.returned_quantity < ln.quantity for ln in lines[p.id])
    }
    sales = await repository.count_sales(session, sorted(kept), now)
    await shops.record_completed_sales(session, settings, sales)
    return len(parts)
