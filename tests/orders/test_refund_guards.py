"""Refunds are refused, cleanly and with nothing moved, when there is no payment to refund: the
checks raise errors that `python -O` keeps, not asserts it strips."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import assert_problem
from tests.orders.helpers import checkout, market
from tests.orders.test_fulfilment import asked, deliver, paid_order, supplier_decides
from xiaopu.models import RefundReason
from xiaopu.orders import payments, repository


async def _count(session: AsyncSession, sql: str, **params: object) -> int:
    return int(await session.scalar(text(sql), params) or 0)


async def test_approving_a_return_on_an_order_that_is_not_paid_is_a_conflict(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """No flow leaves a return open on an unpaid order today; should one ever (a data repair, a
    new flow), approving it is a 409 and moves nothing, rather than a refund of money never
    taken once -O has stripped an assert."""
    m = await market(client, session, price=10_000)
    supply = m.suppliers[0]
    order = await paid_order(client, m.slug, [(m.variant, 2)])
    part = order["supplier_orders"][0]
    await deliver(client, supply, part["id"])
    return_id = await asked(client, order, part["lines"][0]["id"], 1)
    await session.execute(
        text("UPDATE orders SET status = 'pending_payment' WHERE id = :o"), {"o": order["id"]}
    )
    await session.commit()

    refused = await supplier_decides(client, supply, return_id, "approve")
    body = assert_problem(refused, 409, "order_not_paid")
    assert body["current_status"] == "pending_payment"
    assert (
        await _count(session, "SELECT count(*) FROM refunds WHERE order_id = :o", o=order["id"])
        == 0
    )
    assert (
        await _count(
            session, "SELECT returned_quantity FROM order_lines WHERE order_id = :o", o=order["id"]
        )
        == 0
    )
    status = await session.scalar(
        text("SELECT status FROM returns WHERE id = :r"), {"r": return_id}
    )
    assert status == "requested"


async def test_a_refund_of_an_unpaid_payment_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """refund_part, which every refund of units goes through (returns, supplier cancels), checks
    that the payment was taken before it records a refund and reverses earnings."""
    m = await market(client, session, price=10_000)
    placed = await checkout(client, m.slug, [(m.variant, 1)])
    order_id = uuid.UUID(placed["id"])
    order = await repository.one(session, repository.any_orders(), order_id, lock=True)
    assert order is not None
    (part,) = await repository.supplier_orders_of(session, [order_id], lock=True)
    (line,) = await repository.lines_of_supplier_orders(session, [part.id], lock=True)

    with pytest.raises(payments.OrderNotPaid) as refused:
        await payments.refund_part(
            session,
            order,
            part,
            RefundReason.supplier_cancelled,
            {line.id: (1, line.base_minor + line.markup_minor)},
            0,
        )
    assert refused.value.status == 409
    assert refused.value.extra == {"payment_status": "pending"}
    assert (order.refunded_minor, part.refunded_minor) == (0, 0)
    assert (
        await _count(session, "SELECT count(*) FROM refunds WHERE order_id = :o", o=order_id) == 0
    )
