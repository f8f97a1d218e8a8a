"""A shop's recommended products: a known history gives an exact ranking and exact reasons,
and what a shop may not be offered (carried, sold out, inactive, suspended) never is."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import add_to_shop, assert_problem
from tests.matching.helpers import NOW, World, compute, world
from xiaopu.config import Settings
from xiaopu.jobs import schedules
from xiaopu.kit.clock import Clock
from xiaopu.matching.jobs import COMPUTE_JOB


def _score(figures: dict[str, dict[str, int]]) -> int:
    """The documented product of the factors, from the figures the answer shows."""
    return (
        figures["category_affinity"]["share_bps"]
        * figures["price_band_affinity"]["share_bps"]
        * figures["conversion"]["conversion_bps"]
        * (10_000 - figures["return_rate"]["return_rate_bps"])
        * (10_000 + figures["commission"]["commission_bps"])
        * (10_000 + figures["similar_shops"]["share_bps"])
        // 10**16
    )


async def _recommended(client: httpx.AsyncClient, w: World, **params: object) -> dict:  # type: ignore[type-arg]
    response = await client.get(
        "/v1/shops/mine/recommendations", params=params, headers=w.a.keeper.headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_known_history_gives_an_exact_ranking_with_its_reasons(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(NOW)
    w = await world(client, session)
    await compute(session, settings, test_clock)

    items = (await _recommended(client, w))["items"]

    # A's buyers want mid-priced tea. Platform activity (an ordered unit counts as 10 clicks):
    # A 70 (tea, 30–100), B 100 (tea, 30–100), C 80 (snacks, under 30): 250 in all. A's tea
    # share: (70 + 20 × 170/250) / (70 + 20) = 92.89%; its snacks share (0 + 20 × 80/250) / 90
    # = 7.11%; the same for the bands. Products' rates are smoothed towards the platform's:
    # 10 orders from 75 product visitors (13.33%), 1 unit back of 16 (6.25%).
    assert [i["product_id"] for i in items] == [
        w.s.product("t1"),  # sold by B, A's one peer; 2 orders from 20 visitors
        w.s.product("t2"),  # tea at A's price, no history: the platform's rates
        w.s.product("snack_carried"),  # snacks: 1 order, no visitors
        w.s.product("k1"),  # snacks: 3 orders from 40 visitors, 1 of 3 units back
    ]
    assert [i["rank"] for i in items] == [1, 2, 3, 4]
    t1 = {r["code"]: r["figures"] for r in items[0]["reasons"]}
    assert t1 == {
        "category_affinity": {"units": 4, "clicks": 30, "share_bps": 9289, "days": 30},
        "price_band_affinity": {
            "band": 1,
            "band_min_minor": 3000,
            "band_below_minor": 10000,
            "units": 4,
            "clicks": 30,
            "share_bps": 9289,
            "days": 30,
        },
        "similar_shops": {"shops": 1, "of_shops": 1, "share_bps": 10000, "days": 30},
        # (2 + 100 × 10/75) / (20 + 100) = 12.78%
        "conversion": {"conversion_bps": 1278, "orders": 2, "visitors": 20, "days": 30},
        # (0 + 20 × 1/16) / (2 + 20) = 5.68%
        "return_rate": {"return_rate_bps": 568, "returned_units": 0, "units": 2, "days": 30},
        "commission": {"commission_bps": 1500},
        "in_stock": {"stock": 10},
    }
    k1 = {r["code"]: r["figures"] for r in items[3]["reasons"]}
    assert k1 == {
        "category_affinity": {"units": 0, "clicks": 0, "share_bps": 711, "days": 30},
        "price_band_affinity": {
            "band": 0,
            "band_min_minor": 0,
            "band_below_minor": 3000,
            "units": 0,
            "clicks": 0,
            "share_bps": 711,
            "days": 30,
        },
        # C sold it, but C's buyers favour snacks: no shop like A's.
        "similar_shops": {"shops": 0, "of_shops": 1, "share_bps": 0, "days": 30},
        # The cancelled order of 3 counts for nothing: (3 + 13.33) / 140 = 11.67%.
        "conversion": {"conversion_bps": 1167, "orders": 3, "visitors": 40, "days": 30},
        # (1 + 1.25) / (3 + 20) = 9.78%
        "return_rate": {"return_rate_bps": 978, "returned_units": 1, "units": 3, "days": 30},
        "commission": {"commission_bps": 2000},
        "in_stock": {"stock": 10},
    }
    t2 = {r["code"]: r["figures"] for r in items[1]["reasons"]}
    # A's own order of t2 fell before the window: it is neither A's nor the product's.
    assert t2["conversion"] == {"conversion_bps": 1333, "orders": 0, "visitors": 0, "days": 30}
    assert t2["return_rate"]["return_rate_bps"] == 625
    for item in items:
        figures = {r["code"]: r["figures"] for r in item["reasons"]}
        assert item["score"] == _score(figures)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    assert items[0]["score"] == 23922160
    texts = [r["text"] for r in items[0]["reasons"]]
    assert texts[0] == (
        "Your buyers ordered 4 Tea products and opened 30 Tea links in 30 days "
        "(92.9% of your shop's interest)"
    )
    assert texts[2] == (
        "Sold by 1 of the 1 other shops like yours (whose buyers favour Tea) in 30 days"
    )
    assert texts[3] == "Converts at 12.8% across shops (2 orders from 20 visitors in 30 days)"
    assert items[0]["title"] == "Product t1"
    assert items[0]["category_id"] == "food.tea"
    assert items[0]["min_price_minor"] == 6000
    assert items[0]["currency"] == "CNY"
    assert items[0]["supplier_id"] == w.s.id
    assert items[0]["computed_at"] == "2026-12-10T04:00:00Z"


async def test_carried_sold_out_inactive_and_suspended_products_are_never_offered(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(NOW)
    w = await world(client, session)
    await compute(session, settings, test_clock)

    stored = {
        str(r[0])
        for r in await session.execute(text("SELECT product_id FROM shop_recommendations"))
    }
    never = {
        w.s.product("carried"),  # A carries it (B and C do not, and have it recommended)
        w.s.product("sold_out"),
        w.s.product("draft"),
        w.suspended.product("x"),  # B sold 5 of it, but its supplier is suspended
        w.other.product("o1"),  # fruit: nobody's buyers showed interest, a factor of 0
    }
    mine = {i["product_id"] for i in (await _recommended(client, w))["items"]}
    assert mine.isdisjoint(never)
    assert stored.isdisjoint(never - {w.s.product("carried")})
    b = await client.get("/v1/shops/mine/recommendations", headers=w.b.keeper.headers)
    assert w.s.product("t1") not in {i["product_id"] for i in b.json()["items"]}  # B's own
    assert w.s.product("carried") in {i["product_id"] for i in b.json()["items"]}

    # What changed since the run is left out at once: t2 sold out, t1 picked by A.
    pushed = await client.post(
        f"/v1/suppliers/{w.s.id}/stock",
        json={"items": [{"sku": w.s.products["t2"]["variants"][0]["sku"], "stock": 0}]},
        headers=w.s.key,
    )
    assert pushed.status_code == 200, pushed.text
    added = await add_to_shop(client, w.a.keeper.headers, w.s.product("t1"))
    assert added.status_code == 201, added.text
    items = (await _recommended(client, w))["items"]
    assert [i["product_id"] for i in items] == [
        w.s.product("snack_carried"),
        w.s.product("k1"),
    ]
    assert [i["rank"] for i in items] == [3, 4]  # the ranks computed, gaps where items left

    suspended = await client.post(
        f"/v1/operator/suppliers/{w.s.id}/suspend", json={"reason": "x"}, headers=w.op.headers
    )
    assert suspended.status_code == 200, suspended.text
    assert (await _recommended(client, w))["items"] == []


async def test_pages_by_rank_and_refuses_a_bad_cursor(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(NOW)
    w = await world(client, session)
    await compute(session, settings, test_clock)

    first = await _recommended(client, w, limit=3)
    assert [i["rank"] for i in first["items"]] == [1, 2, 3]
    rest = await _recommended(client, w, limit=3, cursor=first["next_cursor"])
    assert [i["rank"] for i in rest["items"]] == [4]
    assert rest["next_cursor"] is None

    for cursor in ("not-a-cursor", "WyJ4Il0"):  # garbage, and ["x"]
        bad = await client.get(
            "/v1/shops/mine/recommendations",
            params={"cursor": cursor},
            headers=w.a.keeper.headers,
        )
        assert_problem(bad, 400, "invalid_cursor")
    too_many = await client.get(
        "/v1/shops/mine/recommendations", params={"limit": 101}, headers=w.a.keeper.headers
    )
    assert too_many.status_code == 422
    assert too_many.headers["content-type"] == "application/problem+json"


async def test_a_second_run_replaces_the_first_and_the_job_is_scheduled(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    assert COMPUTE_JOB in {s.name for s in schedules()}
    test_clock.freeze(NOW)
    w = await world(client, session)
    await compute(session, settings, test_clock)
    count = "SELECT count(*) FROM shop_recommendations WHERE shop_id = :shop"
    before = await session.scalar(text(count), {"shop": w.a.id})
    await compute(session, settings, test_clock)
    assert await session.scalar(text(count), {"shop": w.a.id}) == before == 4


async def test_a_person_without_a_shop_gets_404(client: httpx.AsyncClient) -> None:
    signed_up = await client.post(
        "/v1/auth/signup", json={"email": "noshop-match@example.com", "password": "pw-12345678"}
    )
    headers = {"Authorization": f"Bearer {signed_up.json()['tokens']['access_token']}"}
    response = await client.get("/v1/shops/mine/recommendations", headers=headers)
    assert_problem(response, 404, "shop_not_found")
    anonymous = await client.get("/v1/shops/mine/recommendations")
    assert_problem(anonymous, 401, "unauthenticated")
