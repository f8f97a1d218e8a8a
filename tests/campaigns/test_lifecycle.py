"""A campaign from creation to settlement through the API, with exact figures: prices by the
clock, a budget that runs out, an expiry and a partial refund giving back, results = ledger."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.campaigns.helpers import body, campaign, create, login, sign_up, tick
from tests.catalogue.helpers import add_to_shop, new_actor, open_shop
from tests.orders.helpers import (
    Supply,
    checkout,
    events,
    key,
    market,
    pay,
    run_queued,
    run_schedule,
    supplier_act,
)
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock


async def stock(client: httpx.AsyncClient, supply: Supply) -> int:
    product = await client.get(
        f"/v1/suppliers/{supply.id}/products/{supply.products[0]}", headers=supply.headers
    )
    value: int = product.json()["variants"][0]["stock"]
    return value


def only_line(order: dict[str, Any]) -> dict[str, Any]:
    (part,) = order["supplier_orders"]
    (line,) = part["lines"]
    return dict(line)


async def supplier_line(
    client: httpx.AsyncClient, supply: Supply, order: dict[str, Any]
) -> dict[str, Any]:
    part_id = order["supplier_orders"][0]["id"]
    seen = await client.get(f"/v1/suppliers/{supply.id}/orders/{part_id}", headers=supply.headers)
    (line,) = seen.json()["lines"]
    return dict(line)


async def deliver(client: httpx.AsyncClient, supply: Supply, order: dict[str, Any]) -> None:
    part_id = order["supplier_orders"][0]["id"]
    for action, data in (
        ("accept", None),
        ("ship", {"carrier": "SF", "tracking_number": f"SF{part_id[:8]}"}),
        ("deliver", None),
    ):
        response = await supplier_act(client, supply, part_id, action, data)
        assert response.status_code == 200, response.text


async def test_a_campaign_from_creation_to_settlement(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session, price=10_000, stock=100, markup_bps=0, commission_bps=1000)
    supply, variant = m.suppliers[0], m.variant
    start = test_clock.now()
    test_clock.freeze(start)

    # A draft sets nothing aside; scheduling takes the 10 allocated units out of stock.
    data = body(variant, start, price=8_000, units=10, boost_bps=500, budget=1_200)
    draft = await create(client, supply, data)
    assert draft["status"] == "draft"
    assert draft["items"][0]["units_left"] is None
    assert draft["budgets"] == [
        {"currency": "CNY", "budget_minor": 1_200, "left_minor": None, "released_minor": None}
    ]
    assert await stock(client, supply) == 100
    made = await client.post(
        f"/v1/suppliers/{supply.id}/campaigns/{draft['id']}/schedule",
        headers={**supply.headers, **key()},
    )
    assert made.status_code == 200, made.text
    c = made.json()
    assert c["status"] == "scheduled"
    assert c["items"][0]["units_left"] == 10
    assert c["items"][0]["regular_price_minor"] == 10_000
    assert c["budgets"][0]["left_minor"] == 1_200
    assert await stock(client, supply) == 90
    assert [e["campaign_id"] for e in await events(session, "campaign.scheduled")] == [c["id"]]

    # The keeper signs up; a second shop carries the product without signing up.
    listed = await client.get("/v1/shops/mine/campaigns", headers=m.keeper.headers)
    assert [x["id"] for x in listed.json()["items"]] == [c["id"]]
    assert listed.json()["items"][0]["can_join"] is True
    joined = await sign_up(client, m.keeper, c["id"])
    assert joined.status_code == 200, joined.text
    assert joined.json()["joined_at"] is not None
    assert joined.json()["can_join"] is False
    other = await new_actor(client)
    other_shop = await open_shop(client, other.headers)
    assert (await add_to_shop(client, other.headers, supply.products[0])).status_code == 201

    # Warm-up an hour later (the start is an hour off: announced too); still the regular price.
    test_clock.advance(timedelta(hours=1))
    await tick(session, settings)
    assert (await campaign(client, supply, c["id"]))["status"] == "warm_up"
    assert len(await events(session, "campaign.warm_up")) == 1
    assert len(await events(session, "campaign.starting")) == 1
    early = await checkout(client, m.slug, [(variant, 1)])
    assert only_line(early)["unit_price_minor"] == 10_000
    assert only_line(early)["campaign_id"] is None

    # At the start the same shop sells at the campaign price, before the job has run.
    test_clock.advance(timedelta(hours=1))
    a = await checkout(client, m.slug, [(variant, 2)])
    assert only_line(a)["unit_price_minor"] == 8_000
    assert only_line(a)["campaign_id"] == c["id"]
    assert a["total_minor"] == 16_000
    line_a = await supplier_line(client, supply, a)
    assert (line_a["boost_bps"], line_a["boost_withheld"]) == (500, False)
    # 16,000 × 5% = 800 of the budget is reserved; 400 is left: D's boost takes the rest.
    d = await checkout(client, m.slug, [(variant, 1)])
    assert (await supplier_line(client, supply, d))["boost_bps"] == 500
    regular = await checkout(client, other_shop["slug"], [(variant, 1)])
    assert only_line(regular)["unit_price_minor"] == 10_000  # not signed up
    await pay(client, a)
    await tick(session, settings)
    live = await campaign(client, supply, c["id"])
    assert live["status"] == "live"
    assert live["items"][0]["units_left"] == 10 - 2 - 1
    assert live["budgets"][0]["left_minor"] == 0
    assert len(await events(session, "campaign.live")) == 1
    assert len(await events(session, "campaign.budget_exhausted")) == 1

    # D is never paid: its expiry gives its unit and its 400 back.
    test_clock.advance(timedelta(minutes=31))
    await run_schedule(session, settings, "orders.expire")
    back = await campaign(client, supply, c["id"])
    assert back["items"][0]["units_left"] == 8
    assert back["budgets"][0]["left_minor"] == 400
    b = await checkout(client, m.slug, [(variant, 1)])
    assert (await supplier_line(client, supply, b))["boost_bps"] == 500
    # Nothing is left for C's boost: C sells at the campaign price without one, and says so.
    c_order = await checkout(client, m.slug, [(variant, 1)])
    assert only_line(c_order)["unit_price_minor"] == 8_000
    line_c = await supplier_line(client, supply, c_order)
    assert (line_c["boost_bps"], line_c["boost_withheld"]) == (0, True)
    await pay(client, b)
    await pay(client, c_order)
    await tick(session, settings)
    assert len(await events(session, "campaign.budget_exhausted")) == 1  # once

    # The leaderboard, refreshed by the clock's job, not by the request.
    board = await client.get(
        f"/v1/suppliers/{supply.id}/campaigns/{c['id']}/leaderboard", headers=supply.headers
    )
    assert board.status_code == 200, board.text
    (first,) = board.json()["items"]
    assert (first["rank"], first["shop_slug"], first["units"], first["gmv_minor"]) == (
        1,
        m.slug,
        4,
        32_000,
    )

    # One millisecond after the end, before the job has run, the shop sells at the regular
    # price again; the job then ends it and puts the 6 unsold units back in stock.
    test_clock.freeze(start + timedelta(hours=2, days=1, milliseconds=1))
    late = await checkout(client, m.slug, [(variant, 1)])
    assert only_line(late)["unit_price_minor"] == 10_000
    # 90 once scheduled; the two regular orders expired unpaid; this one took a unit.
    assert await stock(client, supply) == 89
    await tick(session, settings)
    assert await stock(client, supply) == 89 + 6
    ended = await campaign(client, supply, c["id"])
    assert (ended["status"], ended["ended_early"]) == ("ended", False)
    assert ended["items"][0]["units_left"] is None
    assert len(await events(session, "campaign.ended")) == 1

    # Fulfilment, and a refund of one of A's units after the end: the boost reverses by
    # f(2) − f(1) = 400 back to the budget; the unit goes back to stock.
    for order in (a, b, c_order):
        await deliver(client, supply, order)
    buyer = {"X-Order-Token": a["access_token"]}
    asked = await client.post(
        f"/v1/orders/{a['id']}/returns",
        json={"line_id": only_line(a)["id"], "quantity": 1, "reason": "包装破损"},
        headers=buyer,
    )
    assert asked.status_code == 201, asked.text
    approved = await client.post(
        f"/v1/suppliers/{supply.id}/returns/{asked.json()['id']}/approve",
        json={"restock": True},
        headers={**supply.headers, **key()},
    )
    assert approved.status_code == 200, approved.text
    assert await run_queued(session, settings) == 1
    assert (await campaign(client, supply, c["id"]))["budgets"][0]["left_minor"] == 400
    assert await stock(client, supply) == 96

    # The return windows close: completion, then the campaign settles and releases 400.
    test_clock.advance(timedelta(days=8))
    await run_schedule(session, settings, "orders.complete")
    await tick(session, settings)
    settled = await campaign(client, supply, c["id"])
    assert settled["status"] == "settled"
    assert settled["budgets"][0]["released_minor"] == 400
    results = await client.get(
        f"/v1/suppliers/{supply.id}/campaigns/{c['id']}/results", headers=supply.headers
    )
    assert results.status_code == 200, results.text
    (by_product,) = results.json()["by_product"]
    assert by_product == {
        "product_id": supply.products[0],
        "currency": "CNY",
        "orders": 3,
        "units": 4,
        "gmv_minor": 32_000,
        "refunded_units": 1,
        "refunds_minor": 8_000,
        "boost_minor": 800,  # A's one kept unit and B's: 400 each
        "unboosted_units": 1,
    }
    (by_shop,) = results.json()["by_shop"]
    assert (by_shop["boost_minor"], by_shop["gmv_minor"]) == (800, 32_000)

    # The results match the ledger: the boost parts stand at 800, and the keeper's available
    # earnings are the commission on 3 kept units (800 each) plus that boost.
    ledger_boost = await session.scalar(
        text(
            "SELECT sum(accrued_minor - reversed_minor) FROM commissions c "
            "JOIN order_lines l ON l.id = c.order_line_id "
            "WHERE c.kind = 'boost' AND l.campaign_id = :c"
        ),
        {"c": c["id"]},
    )
    assert ledger_boost == 800
    keeper = await login(client, m.keeper)
    (wallet,) = (await client.get("/v1/shops/mine/wallet", headers=keeper.headers)).json()
    assert wallet["available_minor"] == 3 * 800 + 800
    commissions = await client.get(
        "/v1/shops/mine/commissions", params={"limit": 50}, headers=keeper.headers
    )
    boosts = [x for x in commissions.json()["items"] if x["kind"] == "boost"]
    assert sorted((x["base_minor"], x["rate_bps"], x["accrued_minor"]) for x in boosts) == [
        (8_000, 500, 400),
        (16_000, 500, 800),
    ]
