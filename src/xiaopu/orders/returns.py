"""Returns: buyers ask within the window, suppliers decide, operators overrule; approval refunds
the units (and shipping once the whole supplier order is back)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.audit import service as audit
from xiaopu.errors import Conflict, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.models import (
    AuditAction,
    Decider,
    OrderStatus,
    RefundReason,
    Return,
    ReturnStatus,
    SupplierOrderStatus,
)
from xiaopu.orders import payments, repository, service
from xiaopu.orders.schemas import (
    OperatorReturnDecision,
    RefundOut,
    ReturnDecisionIn,
    ReturnOut,
    ReturnRequest,
)
from xiaopu.orders.service import OrderNotFound, buyer_order
from xiaopu.shops import service as shops
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType


class ReturnNotFound(NotFound):
    code = "return_not_found"
    title = "Return not found"


class LineNotFound(NotFound):
    code = "line_not_found"
    title = "The order has no such line"


class NotDelivered(Conflict):
    code = "not_delivered"
    title = "Returns open when the supplier order is delivered"


class ReturnWindowClosed(Conflict):
    code = "return_window_closed"
    title = "The return window for this line has closed"


class ReturnExceedsQuantity(Conflict):
    code = "return_exceeds_quantity"
    title = "More units than were bought (less those already returned or asked for)"


class ReturnAlreadyDecided(Conflict):
    code = "return_already_decided"
    title = "The return is not awaiting this decision"


async def _out(session: AsyncSession, rows: Sequence[Return]) -> list[ReturnOut]:
    refunds = {
        r.id: r
        for r in await repository.refunds(session, [x.refund_id for x in rows if x.refund_id])
    }
    out = []
    for row in rows:
        refund = refunds.get(row.refund_id) if row.refund_id else None
        out.append(
            ReturnOut(
                id=row.id,
                order_id=row.order_id,
                supplier_order_id=row.supplier_order_id,
                line_id=row.order_line_id,
                quantity=row.quantity,
                reason=row.reason,
                status=row.status,
                decided_by=row.decided_by,
                decision_note=row.decision_note,
                restock=row.restock,
                created_at=row.created_at,
                decided_at=row.decided_at,
                refund=RefundOut.model_validate(refund) if refund else None,
            )
        )
    return out


def _event(row: Return) -> dict[str, object]:
    return {
        "return_id": str(row.id),
        "order_id": str(row.order_id),
        "supplier_order_id": str(row.supplier_order_id),
        "line_id": str(row.order_line_id),
        "quantity": row.quantity,
        "reason": row.reason,
        "status": str(row.status),
        "decided_by": str(row.decided_by) if row.decided_by else None,
        "refund_id": str(row.refund_id) if row.refund_id else None,
    }


async def request_return(
    session: AsyncSession,
    order_id: uuid.UUID,
    account_id: uuid.UUID | None,
    access_token: str | None,
    data: ReturnRequest,
) -> ReturnOut:
    order = await buyer_order(session, order_id, account_id, access_token, lock=True)
    line = await repository.line(session, data.line_id, lock=True)
    if line is None or line.order_id != order.id:
        raise LineNotFound()
    # Locked: the completion job skips a part someone is asking a return on, or, holding it
    # first, completes it before this sees it.
    part = await repository.one_supplier_order(
        session, repository.supplier_orders_any(), line.supplier_order_id, lock=True
    )
    if part is None:
        raise RuntimeError(f"line {line.id} has no supplier order")  # a foreign key
    if part.status is SupplierOrderStatus.completed:
        raise ReturnWindowClosed("The supplier order has completed: its return window closed.")
    if part.status is not SupplierOrderStatus.delivered or part.delivered_at is None:
        raise NotDelivered(extra={"current_status": str(part.status)})
    closes_at = part.delivered_at + timedelta(days=line.return_window_days)
    if utcnow() > closes_at:
        raise ReturnWindowClosed(
            f"Returns for this line closed at {closes_at.isoformat()}.",
            extra={"closed_at": closes_at.isoformat()},
        )
    returnable = (
        line.quantity
        - line.returned_quantity
        - await repository.open_return_units(session, line.id)
    )
    if data.quantity > returnable:
        raise ReturnExceedsQuantity(
            f"{returnable} units of this line can still be returned.",
            extra={"returnable": returnable},
        )
    row = Return(
        order_id=order.id,
        supplier_order_id=part.id,
        order_line_id=line.id,
        supplier_id=part.supplier_id,
        quantity=data.quantity,
        reason=data.reason,
    )
    session.add(row)
    await session.flush()
    await webhooks.emit(session, EventType.return_requested, part.supplier_id, _event(row))
    (out,) = await _out(session, [row])
    return out


async def list_for_buyer(
    session: AsyncSession,
    order_id: uuid.UUID,
    account_id: uuid.UUID | None,
    access_token: str | None,
) -> list[ReturnOut]:
    order = await buyer_order(session, order_id, account_id, access_token)
    return await _out(session, await repository.returns_of_order(session, order.id))


async def _page(
    session: AsyncSession,
    stmt: Select[Return],
    status: ReturnStatus | None,
    page: PageParams,
) -> Page[ReturnOut]:
    rows = await repository.page_of_returns(session, stmt, page, status)
    items, cursor = id_page(rows, page, lambda r: r.id)
    return Page[ReturnOut](items=await _out(session, items), next_cursor=cursor)


async def list_for_supplier(
    session: AsyncSession, supplier_id: uuid.UUID, status: ReturnStatus | None, page: PageParams
) -> Page[ReturnOut]:
    return await _page(session, repository.supplier_returns(supplier_id), status, page)


async def list_for_operator(
    session: AsyncSession, status: ReturnStatus | None, page: PageParams
) -> Page[ReturnOut]:
    return await _page(session, repository.all_returns(), status, page)


async def _approve(session: AsyncSession, row: Return, restock: bool) -> None:
    """Refund the returned units: line price with markup, plus the supplier order's shipping
    when this return brings every unit of it back."""
    order = await repository.one(session, repository.any_orders(), row.order_id, lock=True)
    if order is None:
        raise RuntimeError(f"return {row.id} has no order")  # a foreign key
    if order.status is not OrderStatus.paid:
        raise payments.OrderNotPaid(extra={"current_status": str(order.status)})
    part = await repository.one_supplier_order(
        session, repository.supplier_orders(row.supplier_id), row.supplier_order_id, lock=True
    )
    if part is None:
        # A foreign key, and a return's supplier is its supplier order's.
        raise RuntimeError(f"return {row.id} has no supplier order of its supplier")
    lines = await repository.lines_of_supplier_orders(session, [part.id], lock=True)
    line = next(ln for ln in lines if ln.id == row.order_line_id)
    if row.quantity > line.quantity - line.returned_quantity:
        raise ReturnExceedsQuantity(
            "Those units were already returned.",
            extra={"returnable": line.quantity - line.returned_quantity},
        )
    line.returned_quantity += row.quantity
    amount = (line.unit_price_minor + line.unit_markup_minor) * row.quantity
    everything_back = all(ln.returned_quantity == ln.quantity for ln in lines)
    shipping = part.shipping_minor if everything_back and not part.shipping_refunded else 0
    refund = await payments.refund_part(
        session,
        order,
        part,
        RefundReason.return_approved,
        {line.id: (row.quantity, amount)},
        shipping,
    )
    row.status = ReturnStatus.approved
    row.refund_id = refund.id
    row.restock = restock
    await service.give_back(session, [(line, row.quantity, restock)])
    if part.status is SupplierOrderStatus.completed:
        # An operator's overrule after completion: if no completed supplier order of the order
        # keeps a unit any more, the order no longer counts as a completed sale.
        await session.flush()
        shop_id = await repository.uncount_sale(session, order.id)
        if shop_id is not None:
            await shops.take_back_sale(session, shop_id)


async def _decide(
    session: AsyncSession, row: Return, decider: Decider, approve: bool, data: ReturnDecisionIn
) -> ReturnOut:
    if approve:
        await _approve(session, row, data.restock)
    else:
        row.status = ReturnStatus.rejected
    row.decided_by = decider
    row.decision_note = data.note
    row.decided_at = utcnow()
    await session.flush()
    await webhooks.emit(session, EventType.return_decided, row.supplier_id, _event(row))
    (out,) = await _out(session, [row])
    return out


async def _locked(session: AsyncSession, stmt: Select[Return], return_id: uuid.UUID) -> Return:
    row = await repository.one_return(session, stmt, return_id)
    if row is None:
        raise ReturnNotFound()
    # Lock the order first (the order every writer of an order's rows takes), then the return.
    if await repository.one(session, repository.any_orders(), row.order_id, lock=True) is None:
        raise OrderNotFound()
    locked = await repository.one_return(session, stmt, return_id, lock=True)
    if locked is None:
        raise RuntimeError(f"return {return_id} went while its order was locked")  # never deleted
    return locked


async def supplier_decides(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    return_id: uuid.UUID,
    approve: bool,
    data: ReturnDecisionIn,
) -> ReturnOut:
    row = await _locked(session, repository.supplier_returns(supplier_id), return_id)
    if row.status is not ReturnStatus.requested:
        raise ReturnAlreadyDecided(extra={"current_status": str(row.status)})
    return await _decide(session, row, Decider.supplier, approve, data)


async def operator_decides(
    session: AsyncSession,
    return_id: uuid.UUID,
    data: OperatorReturnDecision,
    *,
    operator_id: uuid.UUID | None = None,
) -> ReturnOut:
    """Operators decide open returns, and overrule a supplier's rejection. An approval cannot
    be taken back: its refund is already on its way to the buyer. The decision is written to
    the audit log as `operator_id`'s (None: not an operator's request, e.g. a test's setup)."""
    row = await _locked(session, repository.all_returns(), return_id)
    approve = data.decision == "approve"
    allowed = (
        (ReturnStatus.requested, ReturnStatus.rejected) if approve else (ReturnStatus.requested,)
    )
    if row.status not in allowed:
        raise ReturnAlreadyDecided(
            f"An operator cannot {data.decision} a return that is {row.status}.",
            extra={"current_status": str(row.status)},
        )
    before = {"status": row.status, "decided_by": row.decided_by}
    out = await _decide(session, row, Decider.operator, approve, data)
    if operator_id is not None:
        overrule = before["status"] is ReturnStatus.rejected
        await audit.record(
            session,
            operator_id,
            AuditAction.return_overrule if overrule else AuditAction.return_decide,
            "return",
            row.id,
            reason=data.note,
            before=before,
            after={"status": row.status, "decided_by": row.decided_by, "restock": data.restock},
        )
    return out
