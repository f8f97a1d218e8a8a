"""Commissions through the whole order life: accrued on payment, reversed on a return, released
on completion, clawed back after it; the wallet and the ledger agree at every step."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.orders.helpers import (
    Market,
    buyer_headers,
    checkout,
    key,
    market,
    pay,
    run_queued,
    run_schedule,
    supplier_act,
)
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.orders import returns
from xiaopu.orders.schemas import OperatorReturnDecision
from xiaopu.payouts import service as payouts


async def _wallet(client: httpx.AsyncClient, m: Market) -> dict[str, Any]:
    response = await client.get("/v1/shops/mine/wallet", headers=m.keeper.headers)
    assert response.status_code == 200, response.text
    (cny,) = response.json()
    assert cny["currency"] == "CNY"
    result: dict[str, Any] = cny
    return result


async def _ledger_is_sound(session: AsyncSession) -> None:
    assert await ledger.reconcile(session) == 0
    clearing = await session.scalar(
        text(
            "SELECT coalesce(sum(e.amount_minor), 0) FROM ledger_entries e "
            "JOIN ledger_accounts a ON a.id = e.account_id WHERE a.purpose = 'clearing'"
        )
    )
    paid = await session.scalar(
        text("SELECT coalesce(sum(amount_minor), 0) FROM payments WHERE status = 'paid'")
    )
    refunded = await session.scalar(text("SELECT coalesce(sum(amount_minor), 0) FROM refunds"))
    assert clearing == paid - refunded  # the platform holds exactly what buyers paid, net


async def test_commissions_follow_the_order(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    # 3 units at 10,000 with 10% commission (product_body's default) and a 10% markup.
    m = await market(client, session, price=10_000, stock=10, commission_bps=1000)
    supply = m.suppliers[0]
    order = await checkout(client, m.slug, [(m.variant, 3)], headers=m.keeper.headers)
    assert order["self_purchase"] is True  # policy `earn` (the default): earns as usual
    await pay(client, order)

    wallet = await _wallet(client, m)
    assert wallet["pending_minor"] == 3_000 + 3_000  # commission 10% of 30,000 + markup 3,000
    assert wallet["available_minor"] == 0
    lines = (await client.get("/v1/shops/mine/commissions", headers=m.keeper.headers)).json()
    kinds = {c["kind"]: c for c in lines["items"]}
    assert kinds["commission"]["base_minor"] == 30_000
    assert kinds["commission"]["rate_bps"] == 1000
    assert kinds["commission"]["rule"] == "self_purchase_earn"
    assert kinds["commission"]["rounding"].startswith("half-up")
    assert kinds["markup"]["accrued_minor"] == 3_000
    assert [h["action"] for h in kinds["commission"]["history"]] == ["accrued"]
    await _ledger_is_sound(session)

    (part,) = order["supplier_orders"]
    await supplier_act(
        client, supply, part["id"], "ship", {"carrier": "SF", "tracking_number": "SF0001"}
    )
    test_clock.freeze(test_clock.now())
    await supplier_act(client, supply, part["id"], "deliver")

    # One unit comes back before completion: its commission and markup are reversed.
    line_id = part["lines"][0]["id"]
    asked = await client.post(
        f"/v1/orders/{order['id']}/returns",
        json={"line_id": line_id, "quantity": 1, "reason": "broken"},
        headers=buyer_headers(order, m.keeper.headers),
    )
    assert asked.status_code == 201, asked.text
    approved = await client.post(
        f"/v1/suppliers/{supply.id}/returns/{asked.json()['id']}/approve",
        json={},
        headers={**supply.headers, **key()},
    )
    assert approved.status_code == 200, approved.text
    wallet = await _wallet(client, m)
    assert wallet["pending_minor"] == 2_000 + 2_000
    await _ledger_is_sound(session)
    # The correction points at the accrual it partly reverses.
    pointed = await session.scalar(
        text(
            "SELECT r.reverses_id = a.id FROM ledger_transactions r, ledger_transactions a "
            "WHERE r.kind = 'refund' AND a.cause = :accrual"
        ),
        {"accrual": f"accrual:{part['id']}"},
    )
    assert pointed is True

    assert await run_queued(session, settings) == 1  # the refund goes out
    # The window closes: what is left becomes available.
    test_clock.advance(timedelta(days=7, seconds=1))
    await run_schedule(session, settings, "orders.complete")
    # (The access token expired with the moved clock: read through the service from here.)
    (balance,) = await payouts.wallet(session, uuid.UUID(m.keeper.account_id))
    assert balance.pending_minor == 0
    assert balance.available_minor == 4_000
    await _ledger_is_sound(session)

    # An operator overrules a supplier's rejection after completion: a clawback from available.
    # (Arranged in the database: the buyer's window has closed, so the API would refuse it.)
    late = await session.execute(
        text(
            "INSERT INTO returns (id, order_id, supplier_order_id, order_line_id, supplier_id, "
            "quantity, reason, status, restock, created_at, updated_at) VALUES (gen_random_uuid(), "
            ":o, :p, :l, :s, 2, 'late', 'rejected', false, now(), now()) RETURNING id"
        ),
        {"o": order["id"], "p": part["id"], "l": line_id, "s": supply.id},
    )
    return_id = late.scalar_one()
    decided = await returns.operator_decides(
        session, return_id, OperatorReturnDecision(decision="approve")
    )
    assert decided.status == "approved"
    (balance,) = await payouts.wallet(session, uuid.UUID(m.keeper.account_id))
    assert balance.available_minor == 0  # 4,000 - 2 × (1,000 + 1,000)
    assert balance.negative_carry_minor == 0
    await _ledger_is_sound(session)
