"""Supplier settlement through the API: sales complete, a week closes into a statement equal to
the ledger's movement to the unit, its payout is paid; a refund after completion carries a
negative net into the next week."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import assert_problem
from tests.factories import person
from tests.orders.helpers import Market, Supply, events, market
from tests.settlements.helpers import (
    complete_all,
    delivered_order,
    refund_after_completion,
    return_before_completion,
    sandbox_keys,
    supplier_balance,
)
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.models.ledger import Purpose
from xiaopu.settlements import payouts, service

# Monday 30 November 2026, 09:00 in Shanghai: the week runs to Sunday 6 December.
MONDAY = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
SHIPPING = 800


def _after_week(week: int) -> datetime:
    """Ten minutes past the local midnight that ends week `week` (0 = MONDAY's week)."""
    return datetime(2026, 12, 6, 16, 10, tzinfo=UTC) + timedelta(weeks=week)


async def _market(client: httpx.AsyncClient, session: AsyncSession) -> Market:
    # 10,000 a unit, 10% commission, the platform's 5% fee: 8,500 a unit to the supplier.
    m = await market(client, session, price=10_000, stock=50, return_window_days=1)
    supply = m.suppliers[0]
    shipping = await client.put(
        f"/v1/suppliers/{supply.id}/shipping",
        json={"amount_minor": SHIPPING, "currency": "CNY"},
        headers=supply.owner.headers,
    )
    assert shipping.status_code == 200, shipping.text
    return m


async def _settlements(client: httpx.AsyncClient, supply: Supply) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/suppliers/{supply.id}/settlements", headers=supply.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _balance(client: httpx.AsyncClient, supply: Supply) -> dict[str, Any]:
    response = await client.get(f"/v1/suppliers/{supply.id}/balance", headers=supply.headers)
    assert response.status_code == 200, response.text
    (cny,) = response.json()
    result: dict[str, Any] = cny
    return result


async def _moved(session: AsyncSession, cause: str, supplier_id: str) -> dict[str, int]:
    """purpose -> the supplier's entries of one ledger transaction."""
    rows = await session.execute(
        text(
            "SELECT a.purpose, e.amount_minor FROM ledger_entries e "
            "JOIN ledger_transactions t ON t.id = e.transaction_id "
            "JOIN ledger_accounts a ON a.id = e.account_id "
            "WHERE t.cause = :cause AND a.owner_id = :supplier"
        ),
        {"cause": cause, "supplier": supplier_id},
    )
    return {r[0]: int(r[1]) for r in rows}


async def test_a_week_closes_into_a_statement_equal_to_the_ledger_and_is_paid(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    test_clock.freeze(MONDAY)
    m = await _market(client, session)
    supply = m.suppliers[0]
    first = await delivered_order(client, m, 3)
    await return_before_completion(client, session, settings, m, first, 1)  # reversed while pending
    await delivered_order(client, m, 1)
    assert await complete_all(session, settings, test_clock) == 2
    owed = await supplier_balance(session, supply.id, Purpose.payable)
    # Three units kept at 8,500 each, and two shipping charges.
    assert owed == 3 * 8_500 + 2 * SHIPPING

    # Nothing closes before the week ends.
    early = await service.close_due(session, settings, MONDAY + timedelta(days=6))
    assert early.period.first_day.isoformat() == "2026-11-23"
    assert early.settlements == 0
    test_clock.freeze(_after_week(0))
    closed = await service.close_due(session, settings)
    await session.commit()
    assert (closed.settlements, closed.failed_suppliers) == (1, 0)
    again = await service.close_due(session, settings)
    assert again.skipped

    (listed,) = await _settlements(client, supply)
    assert listed["number"] == 1
    assert (listed["first_day"], listed["last_day"]) == ("2026-11-30", "2026-12-06")
    assert listed["period_start"] == "2026-11-29T16:00:00Z"
    assert (listed["sales_minor"], listed["commission_minor"]) == (30_000, 3_000)
    assert (listed["platform_fee_minor"], listed["shipping_minor"]) == (1_500, 2 * SHIPPING)
    assert (listed["refunds_minor"], listed["other_minor"], listed["carry_in_minor"]) == (0, 0, 0)
    assert listed["net_minor"] == listed["payout_minor"] == owed
    assert listed["payout"]["status"] == "pending"
    # The close moved exactly the statement's net from payable to settling, in one posting.
    moved = await _moved(session, f"settlement:{listed['id']}", supply.id)
    assert moved == {"payable": owed, "payable_settling": -owed}
    assert await supplier_balance(session, supply.id, Purpose.payable) == 0
    balance = await _balance(client, supply)
    assert (balance["payable_minor"], balance["in_settlement_minor"]) == (0, owed)

    detail = await client.get(
        f"/v1/suppliers/{supply.id}/settlements/{listed['id']}", headers=supply.headers
    )
    assert detail.status_code == 200, detail.text
    lines = detail.json()["lines"]
    assert [ln["kind"] for ln in lines] == ["sale", "sale"]
    assert sorted(ln["sales_minor"] for ln in lines) == [10_000, 20_000]
    assert sum(ln["net_minor"] for ln in lines) == owed
    for ln in lines:
        explained = (
            ln["sales_minor"]
            - ln["commission_minor"]
            - ln["platform_fee_minor"]
            + ln["shipping_minor"]
        )
        assert (ln["other_minor"], ln["net_minor"]) == (0, explained)

    as_csv = await client.get(
        f"/v1/suppliers/{supply.id}/settlements/{listed['id']}",
        headers={**supply.headers, "Accept": "text/csv"},
    )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["row"] for r in rows] == ["sale", "sale", "carry_in", "total"]
    assert rows[-1]["net_minor"] == str(owed)
    assert rows[-1]["net"] == f"{owed // 100}.{owed % 100:02d}"
    assert rows[0]["at_local"].endswith("+08:00")
    by_query = await client.get(
        f"/v1/suppliers/{supply.id}/settlements/{listed['id']}?format=csv",
        headers=supply.headers,
    )
    assert by_query.text == as_csv.text

    # A page of lines at a time: the pages join up into the whole statement, in order.
    url = f"/v1/suppliers/{supply.id}/settlements/{listed['id']}"
    first = (await client.get(url, params={"limit": 1}, headers=supply.headers)).json()
    assert len(first["lines"]) == 1
    assert first["line_count"] == 2
    assert first["net_minor"] == owed  # every page carries the whole statement's totals
    rest = (
        await client.get(
            url, params={"limit": 1, "cursor": first["next_cursor"]}, headers=supply.headers
        )
    ).json()
    assert rest["next_cursor"] is None
    assert [ln["id"] for ln in first["lines"] + rest["lines"]] == [ln["id"] for ln in lines]
    broken = await client.get(url, params={"cursor": "not-a-cursor"}, headers=supply.headers)
    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_cursor"
    too_many = await client.get(url, params={"limit": 501}, headers=supply.headers)
    assert too_many.status_code == 422
    # The CSV is streamed a chunk of lines at a time; chunked, it is the same file.
    monkeypatch.setattr(service, "CSV_CHUNK_LINES", 1)
    chunked = await client.get(url, params={"format": "csv"}, headers=supply.headers)
    assert chunked.text == as_csv.text

    run = await payouts.pay_supplier_payouts(sessionmaker, settings)
    assert (run.paid, run.failed) == (1, 0)
    balance = await _balance(client, supply)
    assert (balance["in_settlement_minor"], balance["paid_minor"]) == (0, owed)
    assert balance["pending_minor"] == balance["negative_carry_minor"] == 0
    (paid,) = await events(session, "supplier_payout.paid")
    assert (paid["supplier_id"], paid["amount_minor"]) == (supply.id, owed)
    assert await sandbox_keys(session, supply.id) == [f"supplier_payout:{listed['payout']['id']}:1"]
    assert await ledger.reconcile(session) == 0
    # A second run finds nothing to pay.
    assert (await payouts.pay_supplier_payouts(sessionmaker, settings)).paid == 0


async def test_a_refund_after_completion_carries_a_negative_net_into_the_next_week(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze(MONDAY)
    m = await _market(client, session)
    supply = m.suppliers[0]
    big = await delivered_order(client, m, 3)
    await complete_all(session, settings, test_clock)
    test_clock.freeze(_after_week(0))
    await service.close_due(session, settings)
    await payouts.pay_supplier_payouts(sessionmaker, settings)
    (week1,) = await _settlements(client, supply)
    assert week1["payout_minor"] == 3 * 8_500 + SHIPPING

    # Week 2: all three units come back after completion (the whole order: its shipping
    # too), one new unit sells.
    test_clock.freeze(MONDAY + timedelta(weeks=1))
    await refund_after_completion(session, supply, big, 3)
    await delivered_order(client, m, 1)
    await complete_all(session, settings, test_clock)
    test_clock.freeze(_after_week(1))
    await service.close_due(session, settings)
    await session.commit()
    week2, _ = await _settlements(client, supply)
    assert week2["number"] == 2
    assert (week2["sales_minor"], week2["refunds_minor"]) == (10_000, 30_000)
    assert week2["commission_minor"] == 1_000 - 3_000
    assert week2["shipping_minor"] == SHIPPING - SHIPPING
    assert week2["net_minor"] == 8_500 + SHIPPING - (3 * 8_500 + SHIPPING)
    assert week2["carry_out_minor"] == week2["net_minor"] < 0
    assert (week2["payout_minor"], week2["payout"]) == (0, None)
    carry = -week2["net_minor"]
    # Nothing moved: payable holds the carry, as the balance shows.
    assert await _moved(session, f"settlement:{week2['id']}", supply.id) == {}
    assert await supplier_balance(session, supply.id, Purpose.payable) == -carry
    balance = await _balance(client, supply)
    assert (balance["payable_minor"], balance["negative_carry_minor"]) == (0, carry)
    detail = (
        await client.get(
            f"/v1/suppliers/{supply.id}/settlements/{week2['id']}", headers=supply.headers
        )
    ).json()
    (refund,) = [ln for ln in detail["lines"] if ln["kind"] == "refund"]
    assert refund["source"].startswith("refund:")
    assert (refund["sales_minor"], refund["shipping_minor"]) == (-30_000, -SHIPPING)
    assert refund["net_minor"] == -(3 * 8_500 + SHIPPING)
    assert (refund["commission_minor"], refund["platform_fee_minor"]) == (-3_000, -1_500)
    assert refund["supplier_order_id"] == big["supplier_orders"][0]["id"]

    # Week 3: three units more; the carry nets against them before anything is paid.
    test_clock.freeze(MONDAY + timedelta(weeks=2))
    await delivered_order(client, m, 3)
    await complete_all(session, settings, test_clock)
    test_clock.freeze(_after_week(2))
    await service.close_due(session, settings)
    await session.commit()
    week3, _, _ = await _settlements(client, supply)
    assert week3["number"] == 3
    assert week3["carry_in_minor"] == -carry
    assert week3["lines_net_minor"] == 3 * 8_500 + SHIPPING
    assert week3["payout_minor"] == week3["net_minor"] == 3 * 8_500 + SHIPPING - carry
    moved = await _moved(session, f"settlement:{week3['id']}", supply.id)
    assert moved == {"payable": week3["net_minor"], "payable_settling": -week3["net_minor"]}
    assert await supplier_balance(session, supply.id, Purpose.payable) == 0
    await payouts.pay_supplier_payouts(sessionmaker, settings)
    balance = await _balance(client, supply)
    assert balance["paid_minor"] == week1["payout_minor"] + week3["payout_minor"]
    assert balance["negative_carry_minor"] == balance["in_settlement_minor"] == 0
    assert await ledger.reconcile(session) == 0


async def test_other_tenants_see_no_settlements(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze(MONDAY)
    m = await _market(client, session)
    supply = m.suppliers[0]
    await delivered_order(client, m, 1)
    await complete_all(session, settings, test_clock)
    test_clock.freeze(_after_week(0))
    await service.close_due(session, settings)
    await session.commit()
    (listed,) = await _settlements(client, supply)
    stranger = await person(client)
    for path in ("balance", "settlements", f"settlements/{listed['id']}"):
        response = await client.get(f"/v1/suppliers/{supply.id}/{path}", headers=stranger)
        assert_problem(response, 404, "supplier_not_found")
    other = await market(client, session)
    foreign = await client.get(
        f"/v1/suppliers/{other.suppliers[0].id}/settlements/{listed['id']}",
        headers=other.suppliers[0].headers,
    )
    assert_problem(foreign, 404, "settlement_not_found")
    missing = await client.get(
        f"/v1/suppliers/{supply.id}/settlements/{uuid.uuid4()}", headers=supply.headers
    )
    assert_problem(missing, 404, "settlement_not_found")
