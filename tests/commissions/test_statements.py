"""Supplier statements: line by line, per currency, matching the ledger to the unit."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.orders.helpers import checkout, key, market, new_supply, pay, supplier_act
from xiaopu.kit.clock import Clock


async def test_a_statement_lists_sales_and_refunds_and_matches_the_ledger(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await market(client, session, price=10_000, stock=10, commission_bps=1000)
    supply = m.suppliers[0]
    await client.put(
        f"/v1/suppliers/{supply.id}/shipping",
        json={"amount_minor": 800, "currency": "CNY"},
        headers=supply.owner.headers,
    )
    start = test_clock.freeze(test_clock.now())
    order = await checkout(client, m.slug, [(m.variant, 3)])
    await pay(client, order)
    (part,) = order["supplier_orders"]
    await supplier_act(
        client, supply, part["id"], "ship", {"carrier": "SF", "tracking_number": "SF0002"}
    )
    await supplier_act(client, supply, part["id"], "deliver")
    asked = await client.post(
        f"/v1/orders/{order['id']}/returns",
        json={"line_id": part["lines"][0]["id"], "quantity": 1, "reason": "too many"},
        headers={"X-Order-Token": order["access_token"]},
    )
    await client.post(
        f"/v1/suppliers/{supply.id}/returns/{asked.json()['id']}/approve",
        json={},
        headers={**supply.headers, **key()},
    )
    period = {
        "since": (start - timedelta(minutes=1)).isoformat(),
        "until": (start + timedelta(minutes=1)).isoformat(),
    }

    response = await client.get(
        f"/v1/suppliers/{supply.id}/statements", params=period, headers=supply.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    (totals,) = body["totals"]
    # 3 × 10,000 sold, 1 unit refunded; 10% commission and the 5% platform fee on the base.
    assert totals == {
        "currency": "CNY",
        "sales_minor": 30_000,
        "refunds_minor": 10_000,
        "commission_minor": 3_000 - 1_000,
        "platform_fee_minor": 1_500 - 500,
        "shipping_minor": 800,
        "net_payable_minor": (30_000 - 3_000 - 1_500) - (10_000 - 1_000 - 500) + 800,
    }
    kinds = [(line["kind"], line["sales_minor"]) for line in body["lines"]]
    assert ("sale", 30_000) in kinds
    assert ("refund", -10_000) in kinds

    owed = await session.scalar(
        text(
            "SELECT -sum(e.amount_minor) FROM ledger_entries e JOIN ledger_accounts a "
            "ON a.id = e.account_id WHERE a.owner_id = :s AND a.purpose = 'payable_pending'"
        ),
        {"s": supply.id},
    )
    assert owed == totals["net_payable_minor"]

    as_csv = await client.get(
        f"/v1/suppliers/{supply.id}/statements",
        params={**period, "format": "csv"},
        headers=supply.headers,
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == len(body["lines"])
    assert sum(int(r["net_payable_minor"]) + int(r["shipping_minor"]) for r in rows) == owed

    stranger = await new_supply(client, m.op)
    foreign = await client.get(
        f"/v1/suppliers/{supply.id}/statements", params=period, headers=stranger.headers
    )
    assert foreign.status_code == 404
    wrong = await client.get(
        f"/v1/suppliers/{supply.id}/statements",
        params={"since": period["until"], "until": period["since"]},
        headers=supply.headers,
    )
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "invalid_period"
    naive = await client.get(
        f"/v1/suppliers/{supply.id}/statements",
        params={"since": "2026-11-01T00:00:00", "until": period["until"]},
        headers=supply.headers,
    )
    assert naive.status_code == 422  # a time without its offset is ambiguous, never a 500
    assert naive.json()["code"] == "validation_error"
