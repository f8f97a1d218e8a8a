"""Builders for settlement tests: completed supplier orders, late refunds, and ledger reads."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.orders.helpers import (
    Market,
    Supply,
    buyer_headers,
    checkout,
    key,
    pay,
    run_queued,
    supplier_act,
)
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.models.ledger import OwnerKind, Purpose
from xiaopu.orders import fulfilment, returns
from xiaopu.orders.schemas import OperatorReturnDecision


async def delivered_order(
    client: httpx.AsyncClient, m: Market, units: int, supply: Supply | None = None
) -> dict[str, Any]:
    """A guest's order of `units` of the supplier's first variant, paid, shipped, delivered."""
    supply = supply or m.suppliers[0]
    order = await checkout(client, m.slug, [(supply.variants[0], units)])
    await pay(client, order)
    (part,) = order["supplier_orders"]
    tracking = {"carrier": "SF", "tracking_number": f"SF{uuid.uuid4().hex[:10]}"}
    shipped = await supplier_act(client, supply, part["id"], "ship", tracking)
    assert shipped.status_code == 200, shipped.text
    delivered = await supplier_act(client, supply, part["id"], "deliver")
    assert delivered.status_code == 200, delivered.text
    return order


async def return_before_completion(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    m: Market,
    order: dict[str, Any],
    units: int,
) -> None:
    """The buyer returns `units` of the first line, the supplier approves and the refund goes
    out (a refund while the supplier's share is still pending)."""
    supply = m.suppliers[0]
    (part,) = order["supplier_orders"]
    asked = await client.post(
        f"/v1/orders/{order['id']}/returns",
        json={"line_id": part["lines"][0]["id"], "quantity": units, "reason": "broken"},
        headers=buyer_headers(order),
    )
    assert asked.status_code == 201, asked.text
    approved = await client.post(
        f"/v1/suppliers/{supply.id}/returns/{asked.json()['id']}/approve",
        json={},
        headers={**supply.headers, **key()},
    )
    assert approved.status_code == 200, approved.text
    assert await run_queued(session, settings) == 1


async def complete_all(
    session: AsyncSession, settings: Settings, test_clock: Clock, window_days: int = 1
) -> int:
    """Move past the return window and run the completion job."""
    test_clock.advance(timedelta(days=window_days, seconds=1))
    completed = await fulfilment.complete_due(session, settings)
    await session.commit()
    return completed


async def refund_after_completion(
    session: AsyncSession, supply: Supply, order: dict[str, Any], units: int
) -> None:
    """An operator overrules a supplier's rejection after completion: a clawback. (Arranged in
    the database: the buyer's window has closed, so the API would refuse the request.)"""
    (part,) = order["supplier_orders"]
    late = await session.execute(
        text(
            "INSERT INTO returns (id, order_id, supplier_order_id, order_line_id, supplier_id, "
            "quantity, reason, status, restock, created_at, updated_at) VALUES (gen_random_uuid(), "
            ":o, :p, :l, :s, :q, 'late', 'rejected', false, now(), now()) RETURNING id"
        ),
        {
            "o": order["id"],
            "p": part["id"],
            "l": part["lines"][0]["id"],
            "s": supply.id,
            "q": units,
        },
    )
    decided = await returns.operator_decides(
        session, late.scalar_one(), OperatorReturnDecision(decision="approve")
    )
    assert decided.status == "approved"
    await session.commit()


async def supplier_balance(
    session: AsyncSession, supplier_id: str, purpose: Purpose, currency: str = "CNY"
) -> int:
    """What the platform owes the supplier in one account (credits, so the ledger's sign
    flipped), summed from the entries."""
    balances = await ledger.balances(session, OwnerKind.supplier, uuid.UUID(supplier_id))
    return -balances.get(currency, {}).get(purpose, 0)


async def sandbox_keys(session: AsyncSession, supplier_id: str) -> list[str]:
    """The keys the sandbox provider was asked to pay this supplier (its own books)."""
    rows = await session.execute(
        text("SELECT key FROM sandbox_payouts WHERE payee_id = :s ORDER BY key"),
        {"s": supplier_id},
    )
    return [r[0] for r in rows]
