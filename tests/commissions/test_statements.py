"""Supplier statements: line by line, per currency, matching the ledger to the unit."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.commissions.stories import (
    Step,
    Story,
    app_client,
    cancel,
    complete,
    deliver,
    forfeit,
    overrule,
    refuse_the_rest,
    release,
    return_one,
    return_the_rest,
    story,
)
from tests.orders.helpers import checkout, key, market, new_supply, pay, supplier_act
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger


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
    for r in rows:  # amounts for people, in yuan with two decimals, beside the exact fen
        assert Decimal(r["net_payable"]) * 100 == int(r["net_payable_minor"])
        assert len(r["sales"].rpartition(".")[2]) == 2

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


# Every policy and decision: the statement is the supplier's ledger -------------------------

STORIES: dict[str, tuple[str, list[Step]]] = {
    "earn: a partial refund, completion, a clawback": (
        "earn",
        [deliver, return_one, refuse_the_rest, complete, overrule],
    ),
    "earn: a unit kept through completion": ("earn", [deliver, return_one, complete]),
    "none: a partial refund, completion, a clawback": (
        "none",
        [deliver, return_one, refuse_the_rest, complete, overrule],
    ),
    "none: cancelled": ("none", [cancel]),
    "hold: undecided through completion": ("hold", [deliver, complete]),
    "hold: released, a partial refund, completion": (
        "hold",
        [release, deliver, return_one, complete],
    ),
    "hold: released after completion, a clawback": (
        "hold",
        [deliver, refuse_the_rest, complete, release, overrule],
    ),
    "hold: forfeited, a partial refund, completion": (
        "hold",
        [deliver, forfeit, return_one, complete],
    ),
    "hold: a partial refund, forfeited, the rest returned": (
        "hold",
        [deliver, return_one, forfeit, return_the_rest],
    ),
    "hold: forfeited after completion": ("hold", [deliver, complete, forfeit]),
    "hold: a partial refund, forfeited after completion, a clawback": (
        "hold",
        [deliver, return_one, refuse_the_rest, complete, forfeit, overrule],
    ),
}


async def _ledger_owes(s: Story, since: datetime, until: datetime) -> int:
    """What the supplier's own accounts (payable_pending and payable) gained in the period."""
    value = await s.session.scalar(
        text(
            "SELECT coalesce(sum(e.amount_minor), 0) FROM ledger_entries e "
            "JOIN ledger_accounts a ON a.id = e.account_id WHERE a.owner_id = CAST(:s AS uuid) "
            "AND a.purpose IN ('payable_pending', 'payable') "
            "AND e.created_at >= :since AND e.created_at < :until"
        ),
        {"s": s.supplier_id, "since": since, "until": until},
    )
    return -int(value or 0)


async def _statement(s: Story, since: datetime, until: datetime) -> dict[str, Any]:
    response = await s.client.get(
        f"/v1/suppliers/{s.supplier_id}/statements",
        params={"since": since.isoformat(), "until": until.isoformat()},
        headers=s.m.suppliers[0].headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(("policy", "steps"), STORIES.values(), ids=STORIES.keys())
async def test_a_statement_matches_the_ledger_under_every_policy_and_decision(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    test_clock: Clock,
    policy: str,
    steps: list[Step],
) -> None:
    async for client in app_client(settings, sessionmaker, policy):
        s = await story(client, session, settings, test_clock)
        for step in steps:
            await step(s)
        # The whole story, and the story cut at a day after it began (completion, and what
        # follows it, are a week later).
        cut = s.start + timedelta(days=1)
        start, end = s.start - timedelta(minutes=1), max(test_clock.now(), cut) + timedelta(hours=1)
        for since, until in ((start, end), (start, cut), (cut, end)):
            body = await _statement(s, since, until)
            owed = await _ledger_owes(s, since, until)
            net = sum(t["net_payable_minor"] for t in body["totals"])
            assert net == owed, (since, until, body)
            assert net == sum(
                ln["net_payable_minor"] + ln["shipping_minor"] for ln in body["lines"]
            )
            for t in body["totals"]:
                # Each column adds up: what the supplier is owed is what it sold, less refunds,
                # the commissions and fees it pays, plus shipping.
                assert t["net_payable_minor"] == (
                    t["sales_minor"]
                    - t["refunds_minor"]
                    - t["commission_minor"]
                    - t["platform_fee_minor"]
                    + t["shipping_minor"]
                )
        whole = await _statement(s, start, end)
        if forfeit in steps:
            (refused,) = [ln for ln in whole["lines"] if ln["kind"] == "forfeit"]
            assert refused["commission_minor"] == -refused["net_payable_minor"] < 0
            assert refused["sales_minor"] == 0
        assert await ledger.reconcile(session) == 0
