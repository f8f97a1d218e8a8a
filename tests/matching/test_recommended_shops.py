"""A product's recommended shops: exact capability profiles from a known history, local days of
the platform's time zone, shops carrying the product left out, and tenancy."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import assert_problem
from tests.matching.helpers import (
    NOW,
    add_product,
    compute,
    new_shop,
    new_supplier,
    operator_actor,
    sold,
    world,
)
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock


def _path(supplier_id: str, product_id: str) -> str:
    return f"/v1/suppliers/{supplier_id}/products/{product_id}/recommended-shops"


async def test_profiles_and_reasons_are_exact(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(NOW)
    w = await world(client, session)
    await compute(session, settings, test_clock)

    response = await client.get(_path(w.s.id, w.s.product("t2")), headers=w.s.key)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    # Tea at 30–100: the shops whose buyers showed interest in tea, B (activity 100) before A
    # (70); C's buyers only ever looked at snacks.
    assert [(i["rank"], i["shop_id"]) for i in items] == [(1, w.b.id), (2, w.a.id)]
    b, a = items
    assert b["name"].endswith("的小铺")
    assert b["profile"] == {
        "window_days": 30,
        "visitors": 30,  # 20 on its t1 link and 10 on its shop link
        "orders": 4,
        "units": 8,  # 2 of t1, 1 of A's tea, 5 of the suspended supplier's tea
        "returned_units": 0,
        "conversion_bps": 1333,  # 4 orders / 30 visitors
        "return_rate_bps": 0,
        "category_units": 8,
        "category_clicks": 20,
        "category_share_bps": 9467,  # (100 + 20 × 170/250) / (100 + 20)
        "band_share_bps": 9467,
        "orders_7d": 4,  # 3, 4 and twice 8 December, all after 2 December 16:00Z
        "last_order_at": "2026-12-08T04:00:00Z",
    }
    assert a["profile"] == {
        "window_days": 30,
        "visitors": 15,  # the 5 repeated opens count for nothing
        "orders": 2,
        "units": 4,
        "returned_units": 0,
        "conversion_bps": 1333,  # 2 / 15
        "return_rate_bps": 0,
        "category_units": 4,
        "category_clicks": 30,
        "category_share_bps": 9289,
        "band_share_bps": 9289,
        "orders_7d": 1,  # 5 December; the 1 December one is older than 7 local days
        "last_order_at": "2026-12-05T04:00:00Z",
    }
    assert {r["code"]: r["figures"] for r in b["reasons"]} == {
        "category_affinity": {"units": 8, "clicks": 20, "share_bps": 9467, "days": 30},
        "price_band_affinity": {
            "band": 1,
            "band_min_minor": 3000,
            "band_below_minor": 10000,
            "share_bps": 9467,
            "days": 30,
        },
        "sales_volume": {"activity": 100, "units": 8, "visitors": 30, "orders": 4, "days": 30},
        "return_rate": {"return_rate_bps": 0, "returned_units": 0, "units": 8, "days": 30},
    }
    # activity × category × band × (10000 − return rate) div 10^8
    assert b["score"] == 100 * 9467 * 9467 * 10_000 // 10**8 == 896240
    assert a["score"] == 70 * 9289 * 9289 * 10_000 // 10**8 == 603998
    assert b["invitation_status"] is None
    assert b["reasons"][0]["text"] == (
        "Its buyers ordered 8 Tea products and opened 20 Tea links in 30 days "
        "(94.7% of its interest)"
    )

    # t1: B carries it, so only A is left; k1: C carries it and nobody else likes snacks.
    t1 = await client.get(_path(w.s.id, w.s.product("t1")), headers=w.s.key)
    assert [i["shop_id"] for i in t1.json()["items"]] == [w.a.id]
    assert [i["rank"] for i in t1.json()["items"]] == [2]
    k1 = await client.get(_path(w.s.id, w.s.product("k1")), headers=w.s.key)
    assert k1.json() == {"items": [], "next_cursor": None}

    first = await client.get(_path(w.s.id, w.s.product("t2")), params={"limit": 1}, headers=w.s.key)
    assert [i["shop_id"] for i in first.json()["items"]] == [w.b.id]
    rest = await client.get(
        _path(w.s.id, w.s.product("t2")),
        params={"limit": 1, "cursor": first.json()["next_cursor"]},
        headers=w.s.key,
    )
    assert [i["shop_id"] for i in rest.json()["items"]] == [w.a.id]


async def test_another_suppliers_product_is_not_found(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(NOW)
    w = await world(client, session)
    await compute(session, settings, test_clock)

    # The other supplier asks about s's product under its own id: no such product of its own.
    theirs = await client.get(_path(w.other.id, w.s.product("t2")), headers=w.other.key)
    assert_problem(theirs, 404, "product_not_found")
    # ... or under s's id, which is not its supplier.
    foreign = await client.get(_path(w.s.id, w.s.product("t2")), headers=w.other.key)
    assert_problem(foreign, 404, "supplier_not_found")
    # A shopkeeper is nobody's supplier.
    keeper = await client.get(_path(w.s.id, w.s.product("t2")), headers=w.a.keeper.headers)
    assert_problem(keeper, 404, "supplier_not_found")
    bad = await client.get(
        f"/v1/suppliers/{w.s.id}/products/not-a-uuid/recommended-shops", headers=w.s.key
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_days_are_local_days_of_the_platforms_time_zone(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(NOW)
    op = await operator_actor(client, session)
    s = await new_supplier(client, op)
    await add_product(client, s, "tea", category="food.tea", price=6_000, commission_bps=1_000)
    await add_product(client, s, "new", category="food.tea", price=7_000, commission_bps=1_000)
    d = await new_shop(client)
    # 00:30 on 10 November in Shanghai: the window's first local day.
    await sold(session, d, s, "tea", quantity=1, paid_at=datetime(2026, 11, 9, 16, 30, tzinfo=UTC))
    # 23:30 on 9 November in Shanghai: the day before the window, though 9 Nov UTC either way.
    await sold(session, d, s, "tea", quantity=2, paid_at=datetime(2026, 11, 9, 15, 30, tzinfo=UTC))
    # 01:00 on 10 December in Shanghai: today, not a whole day yet, though 9 Dec in UTC.
    await sold(session, d, s, "tea", quantity=4, paid_at=datetime(2026, 12, 9, 17, 0, tzinfo=UTC))
    # 23:59 on 2 December in Shanghai: not among the last 7 local days (3 – 9 December).
    await sold(session, d, s, "tea", quantity=8, paid_at=datetime(2026, 12, 2, 15, 59, tzinfo=UTC))
    await compute(session, settings, test_clock)

    response = await client.get(_path(s.id, s.product("new")), headers=s.key)
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert item["shop_id"] == d.id
    profile = item["profile"]
    assert (profile["orders"], profile["units"], profile["orders_7d"]) == (2, 9, 0)
    assert profile["last_order_at"] == "2026-12-02T15:59:00Z"
