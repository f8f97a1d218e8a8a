"""Campaign rules through the API: terms that do not hold together, states that do not allow a
step, who may see and join a campaign, tenancy, events to both audiences, and checkout at
campaign terms staying on the light unit of work. Each refusal is problem+json with a stable
code, never a 500."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import assert_problem
from tests.campaigns.helpers import (
    act,
    body,
    campaign,
    create,
    login,
    scheduled,
    sign_up,
    tick,
)
from tests.catalogue.helpers import add_to_shop, new_actor, open_shop
from tests.conftest import make_settings
from tests.orders.conftest import Live
from tests.orders.helpers import (
    Market,
    Supply,
    checkout,
    events,
    key,
    market,
    new_supply,
    pay,
    place,
)
from tests.webhooks.helpers import new_endpoint
from xiaopu.app import create_app
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.kit.pagination import encode_cursor

APPS = "/v1/operator/applications"


async def a_market(client: httpx.AsyncClient, session: AsyncSession, **kw: Any) -> Market:
    return await market(
        client, session, price=10_000, stock=100, markup_bps=0, commission_bps=1000, **kw
    )


async def stock_of(client: httpx.AsyncClient, supply: Supply, index: int = 0) -> int:
    product = await client.get(
        f"/v1/suppliers/{supply.id}/products/{supply.products[index]}", headers=supply.headers
    )
    assert product.status_code == 200, product.text
    value: int = product.json()["variants"][0]["stock"]
    return value


async def post_campaign(
    client: httpx.AsyncClient, supply: Supply, data: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/v1/suppliers/{supply.id}/campaigns", json=data, headers={**supply.headers, **key()}
    )


async def campaigns_of(client: httpx.AsyncClient, supply: Supply) -> list[dict[str, Any]]:
    listed = await client.get(f"/v1/suppliers/{supply.id}/campaigns", headers=supply.headers)
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


# Terms -----------------------------------------------------------------------------------------


async def test_terms_that_do_not_hold_together_are_refused_as_invalid_campaign(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply, variant = m.suppliers[0], m.variant
    theirs = await new_supply(client, m.op)
    now = test_clock.freeze()
    item = {"variant_id": variant, "price_minor": 8_000, "allocated_units": 5}
    cases: list[tuple[dict[str, Any], str]] = [
        (body(variant, now, price=10_001), "is above the regular price 10000"),
        (body(variant, now, length=timedelta(days=14, seconds=1)), "at most 14 days"),
        (body(variant, now, boost_bps=9_001), "commission 1000 + boost 9001 bps"),
        (body(variant, now, budget=None), "a boost needs a budget"),
        (body(variant, now, items=[item, item]), "a variant appears twice"),
        (body(theirs.variants[0], now), "no such variant of yours"),
        (body(str(uuid.uuid4()), now), "no such variant of yours"),
        (body(variant, now, start=timedelta(minutes=30)), "warm_up_at ≤ starts_at < ends_at"),
    ]
    for data, problem in cases:
        response = await post_campaign(client, supply, data)
        refused = assert_problem(response, 422, "invalid_campaign")
        assert any(problem in p for p in refused["problems"]), (problem, refused)
    assert await campaigns_of(client, supply) == []

    # The limits themselves are allowed: 14 days exactly, boost + commission = 100%, the
    # regular price, and no budget when there is no boost.
    edge = body(variant, now, price=10_000, length=timedelta(days=14), boost_bps=9_000)
    assert (await post_campaign(client, supply, edge)).status_code == 201
    free = body(variant, now, boost_bps=0, budget=None)
    assert (await post_campaign(client, supply, free)).status_code == 201


# Scheduling ------------------------------------------------------------------------------------


async def test_only_a_draft_before_its_start_is_scheduled(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    now = test_clock.freeze()
    once = await scheduled(client, supply, body(m.variant, now, units=10))
    again = await act(client, supply, once["id"], "schedule")
    assert_problem(again, 409, "campaign_not_draft")
    assert await stock_of(client, supply) == 90  # set aside once

    late = await create(client, supply, body(m.variant, now, start=timedelta(hours=2)))
    test_clock.advance(timedelta(hours=2))
    passed = await act(client, supply, late["id"], "schedule")
    assert_problem(passed, 409, "campaign_start_passed")
    assert (await campaign(client, supply, late["id"]))["status"] == "draft"
    assert await stock_of(client, supply) == 90


async def test_two_campaigns_on_one_variant_at_the_same_time_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    now = test_clock.freeze()
    await scheduled(client, supply, body(m.variant, now, units=10, length=timedelta(days=2)))
    # Its warm-up falls inside the first campaign's sale.
    second = await create(
        client,
        supply,
        body(m.variant, now, units=5, warm_up=timedelta(days=1), start=timedelta(days=1, hours=1)),
    )
    refused = await act(client, supply, second["id"], "schedule")
    problem = assert_problem(refused, 409, "campaign_overlap")
    assert problem["variant_ids"] == [m.variant]
    assert await stock_of(client, supply) == 90
    # After the first one ends, the same variant can be in another campaign.
    after = await create(
        client,
        supply,
        body(m.variant, now, units=5, warm_up=timedelta(days=3), start=timedelta(days=3, hours=1)),
    )
    assert (await act(client, supply, after["id"], "schedule")).status_code == 200
    assert await stock_of(client, supply) == 85


async def test_an_allocation_above_stock_sets_nothing_aside(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await market(client, session, price=10_000, stock=20, markup_bps=0, products=2)
    supply = m.suppliers[0]
    a, b = supply.variants
    now = test_clock.freeze()
    data = body(a, now, units=20)
    data["items"].append({"variant_id": b, "price_minor": 8_000, "allocated_units": 21})
    draft = await create(client, supply, data)
    refused = await act(client, supply, draft["id"], "schedule")
    problem = assert_problem(refused, 409, "allocation_exceeds_stock")
    assert problem["variant_ids"] == [b]
    # Neither variant gave anything: not even the one whose stock covered its allocation.
    assert (await stock_of(client, supply, 0), await stock_of(client, supply, 1)) == (20, 20)
    after = await campaign(client, supply, draft["id"])
    assert after["status"] == "draft"
    assert [i["units_left"] for i in after["items"]] == [None, None]
    shards = await session.scalar(
        text("SELECT count(*) FROM campaign_unit_shards WHERE campaign_id = :c"),
        {"c": draft["id"]},
    )
    assert shards == 0
    assert await events(session, "campaign.scheduled") == []


# Ending ----------------------------------------------------------------------------------------


async def test_a_supplier_ends_a_live_campaign_early(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    now = test_clock.freeze()
    c = await scheduled(client, supply, body(m.variant, now, units=10))
    assert (await sign_up(client, m.keeper, c["id"])).status_code == 200
    test_clock.advance(timedelta(hours=2))
    await tick(session, settings)
    assert (await campaign(client, supply, c["id"]))["status"] == "live"
    sold = await checkout(client, m.slug, [(m.variant, 3)])
    assert sold["supplier_orders"][0]["lines"][0]["campaign_id"] == c["id"]

    test_clock.advance(timedelta(hours=1))
    ended = await act(client, supply, c["id"], "end")
    assert ended.status_code == 200, ended.text
    out = ended.json()
    assert (out["status"], out["ended_early"]) == ("ended", True)
    assert out["ended_at"].startswith(test_clock.now().isoformat()[:19])
    assert out["items"][0]["units_left"] is None
    # The 7 unsold units are back in stock: 100 − 10 set aside + 7.
    assert await stock_of(client, supply) == 97
    (event,) = await events(session, "campaign.ended")
    assert (event["campaign_id"], event["ended_early"]) == (c["id"], True)
    # From now on the shop sells at the regular price, from stock.
    after = await checkout(client, m.slug, [(m.variant, 1)])
    (line,) = after["supplier_orders"][0]["lines"]
    assert (line["campaign_id"], line["unit_price_minor"]) == (None, 10_000)
    assert await stock_of(client, supply) == 96

    # An ended campaign cannot be ended again, nor scheduled.
    assert_problem(await act(client, supply, c["id"], "end"), 409, "campaign_not_running")
    assert_problem(await act(client, supply, c["id"], "schedule"), 409, "campaign_not_draft")
    assert len(await events(session, "campaign.ended")) == 1
    # The clock's job leaves it ended, not ended again.
    await tick(session, settings)
    assert len(await events(session, "campaign.ended")) == 1


async def test_a_scheduled_campaign_called_off_gives_its_units_back(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    now = test_clock.freeze()
    c = await scheduled(client, supply, body(m.variant, now, units=25))
    assert await stock_of(client, supply) == 75
    ended = await act(client, supply, c["id"], "end")
    assert ended.status_code == 200, ended.text
    # Called off before its start: ended_at is now, and it counts as ended early.
    assert (ended.json()["status"], ended.json()["ended_early"]) == ("ended", True)
    assert await stock_of(client, supply) == 100
    assert_problem(await act(client, supply, c["id"], "end"), 409, "campaign_not_running")
    # A draft is not running either: it was never scheduled.
    draft = await create(client, supply, body(m.variant, now))
    assert_problem(await act(client, supply, draft["id"], "end"), 409, "campaign_not_running")


# Shops -----------------------------------------------------------------------------------------


async def test_shops_sign_up_only_until_the_start(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    now = test_clock.freeze()
    c = await scheduled(
        client,
        supply,
        body(m.variant, now, warm_up=timedelta(minutes=5), start=timedelta(minutes=10)),
    )
    test_clock.advance(timedelta(minutes=10))  # the start, before the job has made it live
    late = await sign_up(client, m.keeper, c["id"])
    assert_problem(late, 409, "campaign_recruitment_closed")
    seen = await client.get(f"/v1/shops/mine/campaigns/{c['id']}", headers=m.keeper.headers)
    assert seen.status_code == 200, seen.text
    assert (seen.json()["can_join"], seen.json()["joined_at"]) == (False, None)
    # Not signed up: the shop sells at the regular price.
    order = await checkout(client, m.slug, [(m.variant, 1)])
    assert order["supplier_orders"][0]["lines"][0]["campaign_id"] is None


async def test_an_invitation_only_campaign_is_seen_and_joined_by_invited_shops_only(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    now = test_clock.freeze()
    c = await scheduled(client, supply, body(m.variant, now, recruitment="invited"))
    guest = await new_actor(client)
    guest_shop = await open_shop(client, guest.headers)
    url = f"/v1/shops/mine/campaigns/{c['id']}"

    for shop in (m.keeper, guest):
        assert_problem(await client.get(url, headers=shop.headers), 404, "campaign_not_found")
        assert_problem(await sign_up(client, shop, c["id"]), 404, "campaign_not_found")
        listed = await client.get("/v1/shops/mine/campaigns", headers=shop.headers)
        assert listed.json()["items"] == []

    unknown = str(uuid.uuid4())
    invited = await client.post(
        f"/v1/suppliers/{supply.id}/campaigns/{c['id']}/invitations",
        json={"shop_ids": [guest_shop["id"], unknown]},
        headers={**supply.headers, **key()},
    )
    assert invited.status_code == 200, invited.text
    assert invited.json() == {"invited": [guest_shop["id"]], "unknown": [unknown]}
    # Inviting again invites nobody new.
    again = await client.post(
        f"/v1/suppliers/{supply.id}/campaigns/{c['id']}/invitations",
        json={"shop_ids": [guest_shop["id"]]},
        headers={**supply.headers, **key()},
    )
    assert again.json() == {"invited": [], "unknown": []}

    seen = await client.get(url, headers=guest.headers)
    assert seen.status_code == 200, seen.text
    assert (seen.json()["invited"], seen.json()["can_join"]) == (True, True)
    listed = await client.get("/v1/shops/mine/campaigns", headers=guest.headers)
    assert [x["id"] for x in listed.json()["items"]] == [c["id"]]
    joined = await sign_up(client, guest, c["id"])
    assert joined.status_code == 200, joined.text
    assert joined.json()["joined_at"] is not None
    # The shop not invited still sees nothing.
    assert_problem(await client.get(url, headers=m.keeper.headers), 404, "campaign_not_found")
    assert_problem(await sign_up(client, m.keeper, c["id"]), 404, "campaign_not_found")


async def test_invitations_close_with_recruitment(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    now = test_clock.freeze()
    c = await scheduled(client, supply, body(m.variant, now, recruitment="invited"))
    assert (await act(client, supply, c["id"], "end")).status_code == 200
    late = await client.post(
        f"/v1/suppliers/{supply.id}/campaigns/{c['id']}/invitations",
        json={"shop_ids": [str(uuid.uuid4())]},
        headers={**supply.headers, **key()},
    )
    assert_problem(late, 409, "campaign_recruitment_closed")


# Tenancy and the leaderboard -------------------------------------------------------------------


async def test_another_suppliers_campaign_is_not_found(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    other = await new_supply(client, m.op)
    now = test_clock.freeze()
    c = await create(client, supply, body(m.variant, now))
    base = f"/v1/suppliers/{other.id}/campaigns/{c['id']}"
    for method, path in (
        ("GET", ""),
        ("GET", "/results"),
        ("GET", "/leaderboard"),
        ("POST", "/schedule"),
        ("POST", "/end"),
    ):
        response = await client.request(method, base + path, headers={**other.headers, **key()})
        assert_problem(response, 404, "campaign_not_found")
    invite = await client.post(
        base + "/invitations", json={"shop_ids": []}, headers={**other.headers, **key()}
    )
    assert_problem(invite, 404, "campaign_not_found")
    assert await campaigns_of(client, other) == []
    # Untouched by all that.
    assert (await campaign(client, supply, c["id"]))["status"] == "draft"
    # Another supplier's key cannot reach the first supplier's campaigns by their path either.
    theirs = await client.get(f"/v1/suppliers/{supply.id}/campaigns", headers=other.headers)
    assert theirs.status_code in (403, 404), theirs.text
    assert theirs.headers["content-type"].startswith("application/problem+json")


async def test_the_leaderboard_is_read_by_signed_up_shops_and_the_supplier_only(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    now = test_clock.freeze()
    c = await scheduled(client, supply, body(m.variant, now))
    assert (await sign_up(client, m.keeper, c["id"])).status_code == 200
    outsider = await new_actor(client)
    await open_shop(client, outsider.headers)
    assert (await add_to_shop(client, outsider.headers, supply.products[0])).status_code == 201

    test_clock.advance(timedelta(hours=2))
    order = await checkout(client, m.slug, [(m.variant, 2)])
    await pay(client, order)
    await tick(session, settings)

    keeper = await login(client, m.keeper)
    outsider = await login(client, outsider)
    board = await client.get(
        f"/v1/shops/mine/campaigns/{c['id']}/leaderboard", headers=keeper.headers
    )
    assert board.status_code == 200, board.text
    (first,) = board.json()["items"]
    assert (first["rank"], first["shop_slug"], first["units"], first["gmv_minor"]) == (
        1,
        m.slug,
        2,
        16_000,
    )
    assert board.json()["refreshed_at"] is not None
    theirs = await client.get(
        f"/v1/suppliers/{supply.id}/campaigns/{c['id']}/leaderboard", headers=supply.headers
    )
    assert theirs.json()["items"] == board.json()["items"]
    hidden = await client.get(
        f"/v1/shops/mine/campaigns/{c['id']}/leaderboard", headers=outsider.headers
    )
    assert_problem(hidden, 404, "campaign_not_found")
    missing = await client.get(
        f"/v1/shops/mine/campaigns/{uuid.uuid4()}/leaderboard", headers=keeper.headers
    )
    assert_problem(missing, 404, "campaign_not_found")
    # Pages by a cursor it gave out; any other cursor is a clear 400, never a 500.
    paged = await client.get(
        f"/v1/suppliers/{supply.id}/campaigns/{c['id']}/leaderboard",
        params={"limit": 1, "cursor": encode_cursor([1])},
        headers=supply.headers,
    )
    assert paged.status_code == 200, paged.text
    assert paged.json()["items"] == []
    for bad in (encode_cursor(["x"]), encode_cursor([1, 2]), encode_cursor([-1]), "!!"):
        refused = await client.get(
            f"/v1/suppliers/{supply.id}/campaigns/{c['id']}/leaderboard",
            params={"cursor": bad},
            headers=supply.headers,
        )
        assert_problem(refused, 400, "invalid_cursor")


# Events ----------------------------------------------------------------------------------------


async def _deliveries(session: AsyncSession, endpoint_id: str) -> list[str]:
    rows = await session.execute(
        text(
            "SELECT e.type FROM webhook_deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.endpoint_id = :p ORDER BY d.id"
        ),
        {"p": endpoint_id},
    )
    return [t for (t,) in rows]


async def test_campaign_events_reach_the_suppliers_endpoint_and_applications(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await a_market(client, session)
    supply = m.suppliers[0]
    types = [
        "campaign.scheduled",
        "campaign.warm_up",
        "campaign.starting",
        "campaign.live",
        "campaign.ended",
    ]
    theirs = await new_endpoint(
        client, supply.id, supply.owner.headers, "https://supplier.example.com/hooks", types
    )
    made = await client.post(APPS, json={"name": "shop app"}, headers=m.op.headers)
    assert made.status_code == 201, made.text
    app_endpoint = await client.post(
        f"{APPS}/{made.json()['id']}/webhook-endpoints",
        json={"url": "https://app.example.com/hooks", "event_types": types},
        headers=m.op.headers,
    )
    assert app_endpoint.status_code == 201, app_endpoint.text
    # Another supplier's endpoint hears nothing of this campaign.
    other = await new_supply(client, m.op)
    bystander = await new_endpoint(
        client, other.id, other.owner.headers, "https://other.example.com/hooks", types
    )

    now = test_clock.freeze()
    c = await scheduled(client, supply, body(m.variant, now))
    test_clock.advance(timedelta(hours=1))  # warm-up, an hour before the start: the notice
    await tick(session, settings)
    test_clock.advance(timedelta(hours=1))
    await tick(session, settings)
    assert (await act(client, supply, c["id"], "end")).status_code == 200

    expected = types
    assert await _deliveries(session, theirs["id"]) == expected
    assert await _deliveries(session, app_endpoint.json()["id"]) == expected
    assert await _deliveries(session, bystander["id"]) == []
    (scheduled_event,) = await events(session, "campaign.scheduled")
    assert (scheduled_event["campaign_id"], scheduled_event["supplier_id"]) == (c["id"], supply.id)


# The light unit of work ------------------------------------------------------------------------


def fallbacks() -> float:
    value = REGISTRY.get_sample_value(
        "xiaopu_unit_of_work_reruns_total", {"reason": "needs_session"}
    )
    return value or 0.0


@pytest.mark.concurrent
@pytest.mark.parametrize("fast_path", [True, False])
async def test_checkout_at_campaign_terms_never_falls_back_to_a_full_session(
    live: Live, test_clock: Clock, fast_path: bool
) -> None:
    """Campaign lines (boosted, withheld, beside a regular line), a replay, and a line the
    campaign is short of: all in the light unit of work, through both routes."""
    settings = make_settings(str(live.settings.database_url), checkout_fast_path=fast_path)
    app = create_app(settings, sessionmaker=live.sessionmaker)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        async with live.sessionmaker() as session:
            m = await a_market(client, session, products=2)
        supply = m.suppliers[0]
        regular_variant = supply.variants[1]
        data = body(
            m.variant,
            test_clock.now(),
            units=5,
            budget=400,
            warm_up=timedelta(seconds=30),
            start=timedelta(minutes=1),
        )
        c = await scheduled(client, supply, data)
        assert (await sign_up(client, m.keeper, c["id"])).status_code == 200
        test_clock.advance(timedelta(minutes=2))
        before = fallbacks()

        boosted = await checkout(client, m.slug, [(m.variant, 1), (regular_variant, 2)])
        lines = {x["variant_id"]: x for x in boosted["supplier_orders"][0]["lines"]}
        assert lines[m.variant]["campaign_id"] == c["id"]
        assert lines[regular_variant]["campaign_id"] is None
        retry = key()
        first = await place(client, m.slug, [(m.variant, 1)], headers=retry)
        again = await place(client, m.slug, [(m.variant, 1)], headers=retry)
        assert (first.status_code, again.status_code) == (201, 201), again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        short = await place(client, m.slug, [(m.variant, 4)])
        assert_problem(short, 409, "campaign_units_short")

        assert fallbacks() == before
    async with live.sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT boost_bps, boost_withheld FROM order_lines "
                    "WHERE campaign_id = :c ORDER BY created_at, id"
                ),
                {"c": c["id"]},
            )
        ).all()
        left = await session.scalar(
            text("SELECT sum(units_left) FROM campaign_unit_shards WHERE campaign_id = :c"),
            {"c": c["id"]},
        )
    # The first line's 400 boost took the whole budget; the second sold without one.
    assert sorted(tuple(r) for r in rows) == [(0, True), (500, False)]
    assert left == 3
