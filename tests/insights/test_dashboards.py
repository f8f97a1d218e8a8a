"""Dashboards agree exactly with a known history: clicks, orders, refunds, completion and
earnings, counted on local days (Asia/Shanghai) that differ from the UTC ones."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import Actor
from tests.factories import PASSWORD, bearer
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
from xiaopu.insights.jobs import ROLLUP_JOB
from xiaopu.kit.clock import Clock
from xiaopu.orders import fulfilment

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.40"
# 07:30 in Shanghai on 3 November, still 2 November in UTC.
T1 = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
D1, D2, D3 = date(2026, 11, 3), date(2026, 11, 4), date(2026, 11, 5)
RANGE = {"since": "2026-11-03", "until": "2026-11-05"}


async def _flush(client: httpx.AsyncClient) -> None:
    app: Any = client._transport.app  # type: ignore[attr-defined]
    await app.state.clicks.flush()


async def _click(
    client: httpx.AsyncClient, code: str, cookie: str | None = None, agent: str = BROWSER
) -> httpx.Response:
    headers = {"user-agent": agent} | ({"cookie": cookie} if cookie else {})
    client.cookies.clear()  # a visitor is who the cookie (or its absence) says
    response = await client.get(f"/s/{code}", headers=headers)
    assert response.status_code == 302
    return response


async def _fresh(client: httpx.AsyncClient, actor: Actor) -> None:
    """Log in again: the clock moved past the access token's life."""
    response = await client.post(
        "/v1/auth/login", json={"login": actor.email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    actor.headers = bearer(response.json()["access_token"])


async def _ship_and_deliver(client: httpx.AsyncClient, m: Market, order: dict[str, Any]) -> None:
    supply = m.suppliers[0]
    for part in order["supplier_orders"]:
        tracking = {"carrier": "SF", "tracking_number": f"SF{part['id'][:10]}"}
        shipped = await supplier_act(client, supply, part["id"], "ship", tracking)
        assert shipped.status_code == 200, shipped.text
        delivered = await supplier_act(client, supply, part["id"], "deliver")
        assert delivered.status_code == 200, delivered.text


async def _history(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> tuple[Market, str]:
    """Day 1: a product link opened 4 times by 2 visitors (3 counted), an order through it
    (2 × A), one without (A + B), one never paid. Day 2: 3 × B; everything shipped and
    delivered, and the A of the second order returned and refunded. Day 3: all completed."""
    test_clock.freeze(T1)
    m = await market(
        client, session, products=2, price=10_000, stock=50, commission_bps=1000,
        return_window_days=1,
    )  # fmt: skip
    supply = m.suppliers[0]
    a, b = supply.variants
    link = await client.post(
        "/v1/shops/mine/links",
        json={"product_id": supply.products[0], "label": "family group"},
        headers=m.keeper.headers,
    )
    assert link.status_code == 201, link.text
    code = link.json()["code"]

    first = await _click(client, code)
    token = parse_qs(urlsplit(first.headers["location"]).query)["xp_at"][0]
    cookie = first.headers["set-cookie"].split(";")[0]
    test_clock.freeze(T1 + timedelta(minutes=1))
    await _click(client, code, agent=BROWSER + " Android")  # a second visitor
    test_clock.freeze(T1 + timedelta(minutes=2))
    await _click(client, code, cookie)  # the first again within the hour: not counted
    test_clock.freeze(T1 + timedelta(minutes=70))
    await _click(client, code, cookie)  # and after it: counted, the same visitor
    await _flush(client)

    test_clock.freeze(T1 + timedelta(minutes=75))
    o1 = await checkout(client, m.slug, [(a, 2)], attribution_token=token)
    await pay(client, o1)
    o2 = await checkout(client, m.slug, [(a, 1), (b, 1)])
    await pay(client, o2)
    await checkout(client, m.slug, [(b, 1)])  # never paid

    test_clock.freeze(T1 + timedelta(days=1))
    o4 = await checkout(client, m.slug, [(b, 3)])
    await pay(client, o4)
    for order in (o1, o2, o4):
        await _ship_and_deliver(client, m, order)
    (part,) = o2["supplier_orders"]
    line_a = next(ln for ln in part["lines"] if ln["variant_id"] == a)
    asked = await client.post(
        f"/v1/orders/{o2['id']}/returns",
        json={"line_id": line_a["id"], "quantity": 1, "reason": "broken"},
        headers=buyer_headers(o2),
    )
    assert asked.status_code == 201, asked.text
    approved = await client.post(
        f"/v1/suppliers/{supply.id}/returns/{asked.json()['id']}/approve",
        json={},
        headers={**supply.headers, **key()},
    )
    assert approved.status_code == 200, approved.text
    assert await run_queued(session, settings) == 1  # the refund

    test_clock.freeze(T1 + timedelta(days=2, seconds=1))
    assert await fulfilment.complete_due(session, settings) == 3
    await session.commit()
    await run_schedule(session, settings, ROLLUP_JOB)
    await _fresh(client, m.keeper)
    await _fresh(client, m.op)
    return m, link.json()["id"]


async def test_a_shops_dashboard_counts_its_history_on_local_days(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m, link_id = await _history(client, session, settings, test_clock)
    answer = await client.get("/v1/shops/mine/dashboard", params=RANGE, headers=m.keeper.headers)
    assert answer.status_code == 200, answer.text
    board = answer.json()
    assert (board["since"], board["until"], board["time_zone"]) == (
        "2026-11-03",
        "2026-11-05",
        "Asia/Shanghai",
    )
    days = {d["day"]: d for d in board["days"]}
    assert list(days) == ["2026-11-03", "2026-11-04", "2026-11-05"]

    def money(figures: dict[str, Any]) -> tuple[Any, ...]:
        (cny,) = figures["money"]
        e = cny["earnings"]
        return (
            cny["currency"],
            cny["gmv_minor"],
            cny["refunds_minor"],
            e["pending_minor"],
            e["held_minor"],
            e["available_minor"],
            e["paid_minor"],
            e["forfeited_minor"],
            e["reversed_minor"],
        )

    day1 = days["2026-11-03"]
    # 3 clicks by 2 visitors; 2 paid orders (the unpaid one is not counted), both completed.
    assert (day1["clicks"], day1["unique_visitors"]) == (3, 2)
    assert (day1["orders"], day1["completed_orders"], day1["conversion_bps"]) == (2, 2, 10_000)
    # 4 units at 11,000 (10,000 and a 10% markup); the returned A refunded whole. The shop
    # earns 2,000 a unit (10% commission and the markup), released at completion except the
    # returned unit's, taken back.
    assert money(day1) == ("CNY", 44_000, 11_000, 0, 0, 6_000, 0, 0, 2_000)
    day2 = days["2026-11-04"]
    assert (day2["clicks"], day2["unique_visitors"], day2["orders"]) == (0, 0, 1)
    assert day2["conversion_bps"] is None
    assert money(day2) == ("CNY", 33_000, 0, 0, 0, 6_000, 0, 0, 0)
    assert days["2026-11-05"]["orders"] == 0
    assert days["2026-11-05"]["money"] == []

    totals = board["totals"]
    assert (totals["clicks"], totals["unique_visitors"], totals["orders"]) == (3, 2, 3)
    assert totals["conversion_bps"] == 15_000
    assert money(totals) == ("CNY", 77_000, 11_000, 0, 0, 12_000, 0, 0, 2_000)
    assert board["funnel"] == {
        "clicks": 3,
        "unique_visitors": 2,
        "orders": 3,
        "completed_orders": 3,
        "visitor_rate_bps": 6_666,
        "order_rate_bps": 15_000,
        "completion_rate_bps": 10_000,
    }

    # By link: the link's one order of 2 A; everything else came through no link (an order
    # with two products counts once for each).
    links = await client.get(
        "/v1/shops/mine/dashboard/links", params=RANGE, headers=m.keeper.headers
    )
    assert links.status_code == 200, links.text
    rows = [
        (
            r["link_id"],
            r["title"],
            r["clicks"],
            r["unique_visitors"],
            r["orders"],
            r["units"],
            r["refunded_units"],
            r["conversion_bps"],
            [(x["currency"], x["gmv_minor"], x["earnings_minor"]) for x in r["money"]],
        )
        for r in links.json()["items"]
    ]
    assert rows == [
        (link_id, "family group", 3, 2, 1, 2, 0, 5_000, [("CNY", 22_000, 4_000)]),
        (None, None, 0, 0, 3, 5, 1, None, [("CNY", 55_000, 8_000)]),
    ]

    products = await client.get(
        "/v1/shops/mine/dashboard/products", params=RANGE, headers=m.keeper.headers
    )
    a, b = m.suppliers[0].products
    by_product = {
        r["product_id"]: (r["clicks"], r["orders"], r["units"], r["refunded_units"], r["money"])
        for r in products.json()["items"]
    }
    assert [r["product_id"] for r in products.json()["items"]] == [b, a]  # by units
    assert by_product[a] == (3, 2, 3, 1, [{"currency": "CNY", "gmv_minor": 33_000,
                                           "earnings_minor": 4_000}])  # fmt: skip
    assert by_product[b] == (0, 2, 4, 0, [{"currency": "CNY", "gmv_minor": 44_000,
                                           "earnings_minor": 8_000}])  # fmt: skip

    # The CSV is the day table: a row per day and currency (and one for a day without sales).
    table = await client.get(
        "/v1/shops/mine/dashboard",
        params={**RANGE, "format": "csv"},
        headers=m.keeper.headers,
    )
    assert table.headers["content-type"].startswith("text/csv")
    csv_rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [(r["day"], r["orders"], r["gmv_minor"]) for r in csv_rows] == [
        ("2026-11-03", "2", "44000"),
        ("2026-11-04", "1", "33000"),
        ("2026-11-05", "0", ""),
    ]


async def test_a_suppliers_dashboard_and_the_platforms_agree_with_the_orders(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m, _ = await _history(client, session, settings, test_clock)
    supply = m.suppliers[0]
    a, b = supply.products
    base = f"/v1/suppliers/{supply.id}/dashboard"
    board = (await client.get(base, params=RANGE, headers=supply.headers)).json()

    def figures(f: dict[str, Any]) -> tuple[Any, ...]:
        (cny,) = f["money"]
        return (
            f["orders"],
            f["completed_orders"],
            f["units"],
            f["refunded_units"],
            f["return_rate_bps"],
            cny["gmv_minor"],
            cny["sales_minor"],
            cny["refunded_minor"],
            cny["platform_fee_minor"],
        )

    days = {d["day"]: d for d in board["days"]}
    # The platform's 5% of each unit's 10,000, less the returned unit's.
    assert figures(days["2026-11-03"]) == (2, 2, 4, 1, 2_500, 44_000, 40_000, 11_000, 1_500)
    assert figures(days["2026-11-04"]) == (1, 1, 3, 0, 0, 33_000, 30_000, 0, 1_500)
    assert figures(board["totals"]) == (3, 3, 7, 1, 1_428, 77_000, 70_000, 11_000, 3_000)

    products = (await client.get(f"{base}/products", params=RANGE, headers=supply.headers)).json()
    rows = {
        r["product_id"]: (
            r["orders"],
            r["units"],
            r["refunded_units"],
            r["return_rate_bps"],
            r["shops_carrying"],
            r["shops_selling"],
            r["money"][0]["gmv_minor"],
            r["money"][0]["platform_fee_minor"],
        )
        for r in products["items"]
    }
    assert rows == {
        a: (2, 3, 1, 3_333, 1, 1, 33_000, 1_000),
        b: (2, 4, 0, 0, 1, 1, 44_000, 2_000),
    }
    shops = (
        await client.get(f"{base}/products/{a}/shops", params=RANGE, headers=supply.headers)
    ).json()
    ((shop,),) = [shops["items"]]
    assert (shop["slug"], shop["orders"], shop["units"], shop["refunded_units"]) == (
        m.slug,
        2,
        3,
        1,
    )

    # Stock cover: the units kept in the last 28 days against the stock left.
    cover = (await client.get(f"{base}/stock", headers=supply.headers)).json()
    stock = {
        v["id"]: v["stock"]
        for p in (a, b)
        for v in (
            await client.get(f"/v1/suppliers/{supply.id}/products/{p}", headers=supply.headers)
        ).json()["variants"]
    }
    kept = {supply.variants[0]: 2, supply.variants[1]: 4}
    assert {c["variant_id"]: (c["stock"], c["units_sold"]) for c in cover["items"]} == {
        v: (stock[v], kept[v]) for v in kept
    }
    for c in cover["items"]:
        assert c["days_of_cover"] == round(c["stock"] / (c["units_sold"] / 28), 1)

    # The operator's day 1: this test's shop and supplier joined and sold; clicks as above.
    op = await client.get("/v1/operator/dashboard", params=RANGE, headers=m.op.headers)
    assert op.status_code == 200, op.text
    (day1,) = [d for d in op.json()["days"] if d["day"] == "2026-11-03"]
    assert (day1["new_shops"], day1["new_suppliers"]) == (1, 1)
    assert (day1["active_shops"], day1["active_suppliers"]) == (1, 1)
    assert (day1["clicks"], day1["unique_visitors"], day1["orders"]) == (3, 2, 2)
    (cny,) = day1["money"]
    assert (cny["gmv_minor"], cny["refunds_minor"], cny["platform_fee_minor"]) == (
        44_000,
        11_000,
        1_500,
    )
    assert cny["refund_rate_bps"] == 2_500

    # Each figure is the source's: the rollup tables say what the orders say.
    paid = await session.scalar(
        text("SELECT count(*) FROM orders WHERE shop_id = (SELECT id FROM shops WHERE slug = :s) "
             "AND paid_at IS NOT NULL"),
        {"s": m.slug},
    )  # fmt: skip
    assert paid == board["totals"]["orders"]


async def test_a_bad_range_is_refused_and_other_tenants_see_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m, _ = await _history(client, session, settings, test_clock)
    for params in ({"since": "2026-11-05", "until": "2026-11-03"},
                   {"since": "2026-01-01", "until": "2026-11-03"}):  # fmt: skip
        refused = await client.get(
            "/v1/shops/mine/dashboard", params=params, headers=m.keeper.headers
        )
        assert refused.status_code == 422
        assert refused.json()["code"] == "invalid_date_range"
    bad = await client.get(
        "/v1/shops/mine/dashboard", params={"since": "yesterday"}, headers=m.keeper.headers
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "validation_error"

    other = await market(client, session)
    theirs = (
        await client.get("/v1/shops/mine/dashboard", params=RANGE, headers=other.keeper.headers)
    ).json()
    assert theirs["totals"]["orders"] == 0
    stranger = other.suppliers[0]
    foreign = await client.get(
        f"/v1/suppliers/{m.suppliers[0].id}/dashboard", params=RANGE, headers=stranger.headers
    )
    assert foreign.status_code == 404  # another supplier's dashboard does not exist for them
    assert foreign.json()["code"] == "supplier_not_found"
    not_theirs = await client.get(
        f"/v1/suppliers/{stranger.id}/dashboard/products/{m.suppliers[0].products[0]}/shops",
        params=RANGE,
        headers=stranger.headers,
    )
    assert not_theirs.status_code == 404
    assert not_theirs.json()["code"] == "product_not_found"
    keeper_as_operator = await client.get(
        "/v1/operator/dashboard", params=RANGE, headers=m.keeper.headers
    )
    assert keeper_as_operator.status_code == 403
