"""Organisation overrides with exact figures: accrued at completion from the platform fee, a
partial refund after completion reversing f(old) − f(new), month close with the activity rule
met (available) and missed (returned to the platform), then withdrawals paid (and failed) by the
shops' payout run; the cap binding and a refund giving room back, and one level only. Wallet and
statement agree with the ledger.

The market: a unit sells at 10,000 base (+10% markup); the platform fee is 5% of the base
(500 a unit, (base × 500 + 5000) // 10000 for a line); the override is 20% of the fee, so
f(units) = (500 × units × 2000 + 5000) // 10000 = 100 a unit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import assert_problem
from tests.catalogue.helpers import Actor, add_to_shop, new_actor
from tests.orders.helpers import Market, checkout, events, key, market, pay, supplier_act
from tests.organisations.helpers import Headers, new_code, open_with_code
from tests.payouts.helpers import run_queued_payouts
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.orders import fulfilment, returns
from xiaopu.orders.schemas import OperatorReturnDecision
from xiaopu.organisations import overrides

# 10:00 in Shanghai on 10 November 2026.
NOV = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
# 00:10 in Shanghai on 1 December and on 1 January: just after the months end.
DEC_CLOSE = datetime(2026, 11, 30, 16, 10, tzinfo=UTC)
DEC = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)
JAN_CLOSE = datetime(2026, 12, 31, 16, 10, tzinfo=UTC)


async def _org(
    client: httpx.AsyncClient, op: Headers, admin: Actor, name: str, cap: int = 500_000
) -> str:
    response = await client.post(
        "/v1/operator/organisations",
        json={
            "name": name,
            "kind": "city_partner",
            "contract": {
                "override_bps": 2000,
                "currency": "CNY",
                "monthly_cap_minor": cap,
                "min_active_shops": 2,
            },
            "admin": {"email": admin.email},
        },
        headers=op,
    )
    assert response.status_code == 201, response.text
    org_id: str = response.json()["id"]
    return org_id


async def _shop_with_code(client: httpx.AsyncClient, m: Market, person: Actor, code: str) -> str:
    opened = await open_with_code(client, person.headers, code)
    assert opened.status_code == 201, opened.text
    for product_id in m.suppliers[0].products:
        added = await add_to_shop(client, person.headers, product_id, markup_bps=1000)
        assert added.status_code == 201, added.text
    slug: str = opened.json()["slug"]
    return slug


async def _sell(client: httpx.AsyncClient, m: Market, slug: str, units: int) -> dict[str, Any]:
    order = await checkout(client, slug, [(m.variant, units)])
    await pay(client, order)
    supply = m.suppliers[0]
    for part in order["supplier_orders"]:
        tracking = {"carrier": "SF", "tracking_number": f"SF{part['id'][:10]}"}
        assert (await supplier_act(client, supply, part["id"], "ship", tracking)).status_code == 200
        assert (await supplier_act(client, supply, part["id"], "deliver")).status_code == 200
    return order


async def _complete(
    session: AsyncSession, settings: Settings, clock: Clock, at: datetime, expected: int
) -> None:
    clock.freeze(at)
    assert await fulfilment.complete_due(session, settings) == expected
    await session.commit()


async def _refund_after_completion(
    session: AsyncSession, m: Market, order: dict[str, Any], units: int
) -> None:
    """An operator overrules a rejected return after completion (arranged in the database, as
    the buyer's window has closed): a refund of `units` of the order's line."""
    part = order["supplier_orders"][0]
    line_id = part["lines"][0]["id"]
    late = await session.execute(
        text(
            "INSERT INTO returns (id, order_id, supplier_order_id, order_line_id, supplier_id, "
            "quantity, reason, status, restock, created_at, updated_at) VALUES (gen_random_uuid(), "
            ":o, :p, :l, :s, :q, 'late', 'rejected', false, now(), now()) RETURNING id"
        ),
        {"o": order["id"], "p": part["id"], "l": line_id, "s": m.suppliers[0].id, "q": units},
    )
    decided = await returns.operator_decides(
        session, late.scalar_one(), OperatorReturnDecision(decision="approve")
    )
    assert decided.status == "approved"
    await session.commit()


async def _login(client: httpx.AsyncClient, actor: Actor) -> Headers:
    from tests.factories import PASSWORD, bearer

    response = await client.post(
        "/v1/auth/login", json={"login": actor.email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def _ledger_movement(session: AsyncSession, org_id: str) -> dict[str, int]:
    """The organisation's accounts, summed from their entries (credits as positive amounts)."""
    rows = await session.execute(
        text(
            "SELECT a.purpose, -coalesce(sum(e.amount_minor), 0) FROM ledger_accounts a "
            "LEFT JOIN ledger_entries e ON e.account_id = a.id "
            "WHERE a.owner_kind = 'organisation' AND a.owner_id = :o GROUP BY a.purpose"
        ),
        {"o": org_id},
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def _get(client: httpx.AsyncClient, path: str, headers: Headers, **params: str) -> Any:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _balance(
    *, pending: int = 0, available: int = 0, withdrawing: int = 0, paid: int = 0
) -> dict[str, Any]:
    return {
        "currency": "CNY",
        "pending_minor": pending,
        "available_minor": available,
        "withdrawing_minor": withdrawing,
        "paid_minor": paid,
    }


async def _withdraw(
    client: httpx.AsyncClient, org_id: str, headers: Headers, amount: int
) -> httpx.Response:
    return await client.post(
        f"/v1/organisations/{org_id}/withdrawals",
        json={"amount_minor": amount, "currency": "CNY"},
        headers={**headers, **key()},
    )


async def _payout_run(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    op: Headers,
) -> None:
    """An operator queues `payouts.run`, and the worker runs it as it runs shops' payouts."""
    queued = await client.post("/v1/operator/payouts/run", headers={**op, **key()})
    assert queued.status_code == 202, queued.text
    assert await run_queued_payouts(session, sessionmaker, settings) == 1


async def test_overrides_accrue_reverse_and_close_by_the_activity_rule(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    test_clock.freeze(NOV)
    m = await market(
        client, session, products=1, price=10_000, stock=100, commission_bps=1000,
        return_window_days=1,
    )  # fmt: skip
    admin, second = await new_actor(client), await new_actor(client)
    org_id = await _org(client, m.op.headers, admin, "昆明青年创业联盟")
    code = await new_code(client, org_id, admin.headers, label="五华区")
    joined = await client.post(
        "/v1/shops/mine/organisation", json={"invite_code": code["code"]}, headers=m.keeper.headers
    )
    assert joined.status_code == 200, joined.text
    other_slug = await _shop_with_code(client, m, second, code["code"])

    # November: the keeper's shop sells 3 units, the second shop 2; both complete.
    a = await _sell(client, m, m.slug, 3)
    await _sell(client, m, other_slug, 2)
    await _complete(session, settings, test_clock, NOV + timedelta(days=1, hours=1), 2)
    headers = await _login(client, admin)
    lines = await _get(client, f"/v1/organisations/{org_id}/overrides", headers, month="2026-11")
    assert sorted(
        (x["fee_minor"], x["rate_bps"], x["accrued_minor"], x["status"]) for x in lines["items"]
    ) == [(1000, 2000, 200, "pending"), (1500, 2000, 300, "pending")]
    wallet = await _get(client, f"/v1/organisations/{org_id}/wallet", headers)
    assert wallet["balances"] == [_balance(pending=500)]

    # A refund of 1 of the keeper's 3 units after completion: f(3) − f(2) = 300 − 200 = 100.
    await _refund_after_completion(session, m, a, 1)
    wallet = await _get(client, f"/v1/organisations/{org_id}/wallet", headers)
    assert wallet["balances"][0]["pending_minor"] == 400

    # The month closes after local midnight: two active shops, the rule holds.
    test_clock.freeze(DEC_CLOSE)
    run = await overrides.close_months(session, settings)
    await session.commit()
    assert (run.closed, run.released_minor, run.returned_minor) == (1, 400, 0)
    again = await overrides.close_months(session, settings)
    assert again.closed == 0  # idempotent
    headers = await _login(client, admin)
    nov = await _get(client, f"/v1/organisations/{org_id}/statement", headers, month="2026-11")
    (totals,) = nov["totals"]
    assert {k: v for k, v in totals.items() if k != "outcome"} == {
        "currency": "CNY",
        "lines": 2,
        "accrued_minor": 500,
        "reversed_minor": 100,
        "clawed_back_minor": 0,
        "released_minor": 400,
        "returned_minor": 0,
        "cap_used_minor": 400,
    }
    assert totals["outcome"]["active_shops"] == 2
    assert totals["outcome"]["rule_met"] is True
    assert totals["outcome"]["reason"] is None

    # December: only the keeper's shop sells (1 unit: 100); a further refund of November's sale
    # claws 100 back from available.
    test_clock.freeze(DEC)
    await _sell(client, m, m.slug, 1)
    await _complete(session, settings, test_clock, DEC + timedelta(days=1, hours=1), 1)
    await _refund_after_completion(session, m, a, 1)
    headers = await _login(client, admin)
    wallet = await _get(client, f"/v1/organisations/{org_id}/wallet", headers)
    assert wallet["balances"] == [_balance(pending=100, available=300)]
    test_clock.freeze(JAN_CLOSE)
    run = await overrides.close_months(session, settings)
    await session.commit()
    assert (run.closed, run.released_minor, run.returned_minor) == (1, 0, 100)
    headers = await _login(client, admin)
    dec = await _get(client, f"/v1/organisations/{org_id}/statement", headers, month="2026-12")
    (dtotals,) = dec["totals"]
    assert (dtotals["accrued_minor"], dtotals["returned_minor"], dtotals["released_minor"]) == (
        100,
        100,
        0,
    )
    assert dtotals["outcome"]["rule_met"] is False
    assert dtotals["outcome"]["reason"] == (
        "activity rule missed: 1 cohort shop(s) with a completed sale in 2026-12, 2 required"
    )
    nov = await _get(client, f"/v1/organisations/{org_id}/statement", headers, month="2026-11")
    (totals,) = nov["totals"]
    assert (totals["reversed_minor"], totals["clawed_back_minor"]) == (200, 100)

    # Wallet and statements agree with the ledger's entries.
    wallet = await _get(client, f"/v1/organisations/{org_id}/wallet", headers)
    assert wallet["balances"] == [_balance(available=300)]
    moved = await _ledger_movement(session, org_id)
    months = [totals, dtotals]
    assert moved["earnings_available"] == sum(
        t["released_minor"] - t["clawed_back_minor"] for t in months
    )
    assert moved["earnings_pending"] == sum(
        t["accrued_minor"]
        - (t["reversed_minor"] - t["clawed_back_minor"])
        - t["released_minor"]
        - t["returned_minor"]
        for t in months
    )
    assert await ledger.reconcile(session) == 0

    # Withdrawals, by the shops' rules and payout run. ¥1.00 is the smallest here (¥10 by
    # default), so the 300 can be withdrawn.
    monkeypatch.setitem(settings.payout_thresholds_minor, "CNY", 100)
    org_path = f"/v1/organisations/{org_id}/withdrawals"
    staff = await new_actor(client)
    added = await client.post(
        f"/v1/organisations/{org_id}/members", json={"email": staff.email}, headers=headers
    )
    assert added.status_code == 201, added.text
    staff_headers = await _login(client, staff)
    assert_problem(
        await _withdraw(client, org_id, staff_headers, 300), 403, "organisation_admin_only"
    )
    outsider = await _withdraw(client, org_id, await _login(client, m.keeper), 300)
    assert_problem(outsider, 404, "organisation_not_found")
    op = await _login(client, m.op)
    no_key = await client.post(
        org_path, json={"amount_minor": 300, "currency": "CNY"}, headers=headers
    )
    assert_problem(no_key, 400, "idempotency_key_missing")
    too_much = assert_problem(
        await _withdraw(client, org_id, headers, 301), 409, "insufficient_funds"
    )
    assert too_much["available_minor"] == 300
    assert_problem(await _withdraw(client, org_id, headers, 99), 422, "below_payout_threshold")

    # The sandbox refuses amounts ending in 13 minor units: the failed payout returns the funds.
    doomed = await _withdraw(client, org_id, headers, 213)
    assert doomed.status_code == 201, doomed.text
    wallet = await _get(client, f"/v1/organisations/{org_id}/wallet", headers)
    assert wallet["balances"] == [_balance(available=87, withdrawing=213)]
    await _payout_run(client, session, sessionmaker, settings, op)
    listed = await _get(client, org_path, staff_headers)  # staff may read
    assert [(w["id"], w["status"], w["attempts"]) for w in listed["items"]] == [
        (doomed.json()["id"], "failed", 1)
    ]
    assert listed["items"][0]["failure_reason"].startswith("sandbox:")
    wallet = await _get(client, f"/v1/organisations/{org_id}/wallet", headers)
    assert wallet["balances"] == [_balance(available=300)]
    (failed,) = await events(session, "payout.failed")
    assert (failed["organisation_id"], failed["amount_minor"], failed["status"]) == (
        org_id,
        213,
        "failed",
    )
    assert "shop_id" not in failed

    # All 300, paid by the next run under the key `withdrawal:{id}:0`.
    paid = await _withdraw(client, org_id, headers, 300)
    assert paid.status_code == 201, paid.text
    await _payout_run(client, session, sessionmaker, settings, op)
    listed = await _get(client, org_path, headers)
    assert [(w["status"], w["amount_minor"]) for w in listed["items"]] == [
        ("paid", 300),
        ("failed", 213),
    ]
    retry = await client.post(f"{org_path}/{paid.json()['id']}/retry", headers={**headers, **key()})
    assert_problem(retry, 409, "withdrawal_not_retryable")
    wallet = await _get(client, f"/v1/organisations/{org_id}/wallet", headers)
    assert wallet["balances"] == [_balance(paid=300)]
    (paid_event,) = await events(session, "payout.paid")
    assert (paid_event["organisation_id"], paid_event["amount_minor"]) == (org_id, 300)
    owners = (
        (
            await session.execute(
                text("SELECT DISTINCT owner_id::text FROM events WHERE type LIKE 'payout.%'")
            )
        )
        .scalars()
        .all()
    )
    assert owners == [org_id]
    books = (
        await session.execute(
            text(
                "SELECT key, payee_kind, payee_id::text, amount_minor, succeeded "
                "FROM sandbox_payouts WHERE payee_id = :o ORDER BY amount_minor"
            ),
            {"o": org_id},
        )
    ).all()
    assert [tuple(r) for r in books] == [
        (f"withdrawal:{doomed.json()['id']}:0", "organisation", org_id, 213, False),
        (f"withdrawal:{paid.json()['id']}:0", "organisation", org_id, 300, True),
    ]
    # The wallet and the ledger agree: all 300 left the organisation's accounts for clearing.
    moved = await _ledger_movement(session, org_id)
    assert (moved["earnings_pending"], moved["earnings_available"]) == (0, 0)
    assert moved["earnings_withdrawing"] == 0
    assert await ledger.reconcile(session) == 0


async def test_the_cap_binds_and_a_reversal_gives_room_back(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(NOV)
    m = await market(
        client, session, products=1, price=10_000, stock=100, commission_bps=1000,
        return_window_days=1,
    )  # fmt: skip
    admin, second = await new_actor(client), await new_actor(client)
    org_id = await _org(client, m.op.headers, admin, "云南农业大学", cap=350)
    code = await new_code(client, org_id, admin.headers)
    joined = await client.post(
        "/v1/shops/mine/organisation", json={"invite_code": code["code"]}, headers=m.keeper.headers
    )
    assert joined.status_code == 200, joined.text
    other_slug = await _shop_with_code(client, m, second, code["code"])

    # 300 for the keeper's 3 units, then 50 of the second shop's 200: the cap of 350 binds.
    a = await _sell(client, m, m.slug, 3)
    b = await _sell(client, m, other_slug, 2)
    await _complete(session, settings, test_clock, NOV + timedelta(days=1, hours=1), 2)
    by_order = dict(
        (
            await session.execute(
                text(
                    "SELECT order_id::text, accrued_minor FROM overrides WHERE organisation_id = :o"
                ),
                {"o": org_id},
            )
        ).all()
    )
    assert by_order == {a["id"]: 300, b["id"]: 50}

    # Refunding 1 of the second shop's 2 units would take f(2) − f(1) = 100; its line holds 50.
    await _refund_after_completion(session, m, b, 1)
    # Refunding 1 of the keeper's 3 units takes 100 and gives the cap that much room.
    await _refund_after_completion(session, m, a, 1)
    test_clock.freeze(NOV + timedelta(days=2))
    c = await _sell(client, m, other_slug, 1)
    d = await _sell(client, m, m.slug, 1)
    await _complete(session, settings, test_clock, NOV + timedelta(days=3, hours=1), 2)
    rows = dict(
        (
            await session.execute(
                text(
                    "SELECT order_id::text, accrued_minor - reversed_minor FROM overrides "
                    "WHERE organisation_id = :o"
                ),
                {"o": org_id},
            )
        ).all()
    )
    assert rows == {a["id"]: 200, b["id"]: 0, c["id"]: 100, d["id"]: 50}
    headers = await _login(client, admin)
    nov = await _get(client, f"/v1/organisations/{org_id}/statement", headers, month="2026-11")
    (totals,) = nov["totals"]
    assert (totals["accrued_minor"], totals["reversed_minor"], totals["cap_used_minor"]) == (
        500,
        150,
        350,
    )
    wallet = await _get(client, f"/v1/organisations/{org_id}/wallet", headers)
    assert wallet["balances"][0]["pending_minor"] == 350
    assert await ledger.reconcile(session) == 0


async def test_one_level_only(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    """An admin of one organisation runs a shop in another's cohort: that organisation's
    override comes from the shop's sales' fee only; the first organisation earns nothing from
    its member's shop, and its own override income earns no one anything."""
    test_clock.freeze(NOV)
    m = await market(
        client, session, products=1, price=10_000, stock=100, commission_bps=1000,
        return_window_days=1,
    )  # fmt: skip
    first_admin, second_admin = await new_actor(client), await new_actor(client)
    first = await _org(client, m.op.headers, first_admin, "一号机构")
    second = await _org(client, m.op.headers, second_admin, "二号机构")
    # The keeper's shop is in the first organisation's cohort.
    code1 = await new_code(client, first, first_admin.headers)
    joined = await client.post(
        "/v1/shops/mine/organisation", json={"invite_code": code1["code"]}, headers=m.keeper.headers
    )
    assert joined.status_code == 200, joined.text
    # The first organisation's admin opens a shop in the second organisation's cohort.
    code2 = await new_code(client, second, second_admin.headers)
    member_slug = await _shop_with_code(client, m, first_admin, code2["code"])

    await _sell(client, m, m.slug, 3)  # the first organisation's cohort: 300
    await _sell(client, m, member_slug, 2)  # the second's: 200
    await _complete(session, settings, test_clock, NOV + timedelta(days=1, hours=1), 2)

    rows = (
        await session.execute(
            text(
                "SELECT o.organisation_id::text, o.accrued_minor, s.organisation_id::text, "
                "c.accrued_minor FROM overrides o JOIN shops s ON s.id = o.shop_id "
                "JOIN commissions c ON c.order_line_id = o.order_line_id "
                "AND c.kind = 'platform_fee' ORDER BY o.accrued_minor"
            )
        )
    ).all()
    # Each override is its own cohort shop's line's fee × 20%, nothing else.
    assert [tuple(r) for r in rows] == [(second, 200, second, 1000), (first, 300, first, 1500)]
    # Every posting to an organisation's account comes from the platform's fees for a shop's
    # supplier order; no organisation's income is the source of anyone's money.
    sources = (
        await session.execute(
            text(
                "SELECT DISTINCT t.kind, a.owner_kind, a.purpose FROM ledger_transactions t "
                "JOIN ledger_entries e ON e.transaction_id = t.id "
                "JOIN ledger_accounts a ON a.id = e.account_id "
                "WHERE t.id IN (SELECT e2.transaction_id FROM ledger_entries e2 "
                "JOIN ledger_accounts a2 ON a2.id = e2.account_id "
                "WHERE a2.owner_kind = 'organisation') ORDER BY 1, 2, 3"
            )
        )
    ).all()
    assert [tuple(r) for r in sources] == [
        ("override", "organisation", "earnings_pending"),
        ("override", "platform", "fees"),
    ]
    first_wallet = await overrides.wallet(session, uuid.UUID(first))
    second_wallet = await overrides.wallet(session, uuid.UUID(second))
    assert [b.pending_minor for b in first_wallet.balances] == [300]
    assert [b.pending_minor for b in second_wallet.balances] == [200]
