"""A partner organisation's whole path through the API: an operator creates it, its admin adds
staff, a code brings in a new shop and an existing one, refused codes, an audited move, the
cohort's figures after sales (exact, on local days), and a notice sent and read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import Actor, assert_problem, new_actor
from tests.factories import PASSWORD, bearer
from tests.orders.helpers import (
    Market,
    checkout,
    events,
    market,
    pay,
    run_schedule,
    supplier_act,
)
from tests.organisations.helpers import CONTRACT, create_organisation, new_code, open_with_code
from xiaopu.config import Settings
from xiaopu.insights.jobs import ROLLUP_JOB
from xiaopu.kit.clock import Clock
from xiaopu.orders import fulfilment

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.40"
# 07:30 in Shanghai on 3 November, still 2 November in UTC.
T1 = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
RANGE = {"since": "2026-11-03", "until": "2026-11-05"}


async def _fresh(client: httpx.AsyncClient, *actors: Actor) -> None:
    """Log in again: the clock moved past the access tokens' life."""
    for actor in actors:
        response = await client.post(
            "/v1/auth/login", json={"login": actor.email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        actor.headers = bearer(response.json()["access_token"])


async def _deliver(client: httpx.AsyncClient, m: Market, order: dict[str, Any]) -> None:
    supply = m.suppliers[0]
    for part in order["supplier_orders"]:
        tracking = {"carrier": "SF", "tracking_number": f"SF{part['id'][:10]}"}
        shipped = await supplier_act(client, supply, part["id"], "ship", tracking)
        assert shipped.status_code == 200, shipped.text
        delivered = await supplier_act(client, supply, part["id"], "deliver")
        assert delivered.status_code == 200, delivered.text


async def _audit(session: AsyncSession) -> list[tuple[Any, ...]]:
    rows = await session.execute(
        text(
            "SELECT action, object_type, object_id, reason FROM audit_records "
            "WHERE action NOT LIKE 'supplier.%' ORDER BY seq"
        )
    )
    return [tuple(r) for r in rows]


async def test_an_organisation_brings_in_coaches_and_hears_its_cohort(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(T1)
    m = await market(
        client, session, products=2, price=10_000, stock=50, commission_bps=1000,
        return_window_days=1,
    )  # fmt: skip
    op, keeper = m.op, m.keeper
    admin, staff, newcomer, late = [await new_actor(client) for _ in range(4)]

    # The operator creates the organisation, its contract and first admin: audited.
    org = await create_organisation(client, op.headers, admin)
    org_id = org["id"]
    assert (org["kind"], org["status"], org["cohort_shops"]) == ("city_partner", "active", 0)
    assert org["contract"] == CONTRACT
    mine = await client.get("/v1/organisations/mine", headers=admin.headers)
    assert [(o["id"], o["role"]) for o in mine.json()["items"]] == [(org_id, "admin")]

    # The admin adds staff by login email; staff may not add members.
    added = await client.post(
        f"/v1/organisations/{org_id}/members",
        json={"email": staff.email.upper()},
        headers=admin.headers,
    )
    assert added.status_code == 201, added.text
    assert (added.json()["account_id"], added.json()["role"]) == (staff.account_id, "staff")
    again = await client.post(
        f"/v1/organisations/{org_id}/members",
        json={"account_id": staff.account_id},
        headers=admin.headers,
    )
    assert_problem(again, 409, "already_member")
    refused = await client.post(
        f"/v1/organisations/{org_id}/members",
        json={"account_id": newcomer.account_id},
        headers=staff.headers,
    )
    assert_problem(refused, 403, "organisation_admin_only")
    members = await client.get(f"/v1/organisations/{org_id}/members", headers=staff.headers)
    assert sorted(x["role"] for x in members.json()["items"]) == ["admin", "staff"]
    last = await client.delete(
        f"/v1/organisations/{org_id}/members/{admin.account_id}", headers=admin.headers
    )
    assert_problem(last, 409, "last_admin")

    # Staff issue a code for two shops, shown as a link and a QR code.
    code = await new_code(client, org_id, staff.headers, label="五华区培训班", max_uses=2)
    assert (code["state"], code["uses"]) == ("active", 0)
    assert len(code["code"]) == 10
    assert code["code"].isupper()
    assert code["share_url"] == f"{settings.public_base_url}/m/j/{code['code']}"
    qr = await client.get(
        f"/v1/organisations/{org_id}/invite-codes/{code['id']}/qr.svg", headers=staff.headers
    )
    assert (qr.status_code, qr.headers["content-type"]) == (200, "image/svg+xml")
    assert qr.content.startswith(b"<?xml")

    # A person opens a shop with the code (as typed, in lower case); an existing shop joins.
    opened = await open_with_code(client, newcomer.headers, code["code"].lower())
    assert opened.status_code == 201, opened.text
    assert opened.json()["organisation_id"] == org_id
    joined = await client.post(
        "/v1/shops/mine/organisation", json={"invite_code": code["code"]}, headers=keeper.headers
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["organisation_id"] == org_id
    assert joined.json()["organisation_name"] == "昆明青年创业联盟"

    # The code is used up: a third person is refused, and no shop is opened without it.
    assert_problem(
        await open_with_code(client, late.headers, code["code"]), 409, "invite_code_used_up"
    )
    assert_problem(await client.get("/v1/shops/mine", headers=late.headers), 404, "shop_not_found")
    listed = await client.get(f"/v1/organisations/{org_id}/invite-codes", headers=admin.headers)
    (shown,) = listed.json()["items"]
    assert (shown["uses"], shown["state"]) == (2, "used_up")

    # Expired, revoked and unknown codes; a shop in a cohort cannot join another.
    expiring = await new_code(
        client, org_id, staff.headers, expires_at=(T1 + timedelta(minutes=5)).isoformat()
    )
    revoked = await new_code(client, org_id, staff.headers)
    gone = await client.post(
        f"/v1/organisations/{org_id}/invite-codes/{revoked['id']}/revoke", headers=staff.headers
    )
    assert gone.json()["state"] == "revoked"
    test_clock.freeze(T1 + timedelta(minutes=10))
    assert_problem(
        await open_with_code(client, late.headers, expiring["code"]), 409, "invite_code_expired"
    )
    assert_problem(
        await open_with_code(client, late.headers, revoked["code"]), 409, "invite_code_revoked"
    )
    assert_problem(
        await open_with_code(client, late.headers, "ZZZZZZZZZZ"), 404, "invite_code_not_found"
    )
    spare = await new_code(client, org_id, staff.headers)
    again_joined = await client.post(
        "/v1/shops/mine/organisation", json={"invite_code": spare["code"]}, headers=keeper.headers
    )
    assert_problem(again_joined, 409, "shop_in_cohort")
    cohort_of = await client.get("/v1/shops/mine/organisation", headers=late.headers)
    assert_problem(cohort_of, 404, "shop_not_found")

    # The operator moves the newcomer's shop to another organisation, with a reason: audited.
    other = await create_organisation(client, op.headers, admin, name="云南农业大学")
    newcomer_shop = opened.json()["id"]
    moved = await client.post(
        f"/v1/operator/shops/{newcomer_shop}/organisation",
        json={"organisation_id": other["id"], "reason": "studies at the college"},
        headers=op.headers,
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["from_organisation_id"], moved.json()["to_organisation_id"]) == (
        org_id,
        other["id"],
    )
    same = await client.post(
        f"/v1/operator/shops/{newcomer_shop}/organisation",
        json={"organisation_id": other["id"], "reason": "again"},
        headers=op.headers,
    )
    assert_problem(same, 409, "cohort_unchanged")
    contract = await client.put(
        f"/v1/operator/organisations/{org_id}/contract",
        json={**CONTRACT, "override_bps": 1500, "reason": "renewed"},
        headers=op.headers,
    )
    assert contract.json()["contract"]["override_bps"] == 1500
    assert await _audit(session) == [
        ("organisation.create", "organisation", org_id, None),
        ("organisation.create", "organisation", other["id"], None),
        ("shop.move_cohort", "shop", newcomer_shop, "studies at the college"),
        ("organisation.update_contract", "organisation", org_id, "renewed"),
    ]
    moves = await session.execute(
        text(
            "SELECT from_organisation_id::text, to_organisation_id::text, invite_code_id::text "
            "FROM cohort_moves WHERE shop_id = :s ORDER BY at, id"
        ),
        {"s": newcomer_shop},
    )
    assert [tuple(r) for r in moves] == [(None, org_id, code["id"]), (org_id, other["id"], None)]

    # Sales in the keeper's shop (the one left in the cohort): a link clicked, two orders paid
    # on the first local day, one on the second; all delivered and completed.
    supply = m.suppliers[0]
    a, b = supply.variants
    link = await client.post(
        "/v1/shops/mine/links", json={"product_id": supply.products[0]}, headers=keeper.headers
    )
    assert link.status_code == 201, link.text
    client.cookies.clear()
    clicked = await client.get(f"/s/{link.json()['code']}", headers={"user-agent": BROWSER})
    assert clicked.status_code == 302
    token = parse_qs(urlsplit(clicked.headers["location"]).query)["xp_at"][0]
    app: Any = client._transport.app  # type: ignore[attr-defined]
    await app.state.clicks.flush()
    o1 = await checkout(client, m.slug, [(a, 2)], attribution_token=token)
    await pay(client, o1)
    o2 = await checkout(client, m.slug, [(a, 1), (b, 1)])
    await pay(client, o2)
    test_clock.freeze(T1 + timedelta(days=1))
    o3 = await checkout(client, m.slug, [(b, 3)])
    await pay(client, o3)
    for order in (o1, o2, o3):
        await _deliver(client, m, order)
    test_clock.freeze(T1 + timedelta(days=2, seconds=1))
    assert await fulfilment.complete_due(session, settings) == 3
    await session.commit()
    await run_schedule(session, settings, ROLLUP_JOB)
    await _fresh(client, admin, staff, keeper)

    # The cohort page: the keeper's shop alone (the newcomer's moved away), with exact figures.
    page = await client.get(
        f"/v1/organisations/{org_id}/cohort", params=RANGE, headers=staff.headers
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["since"], body["until"], body["time_zone"]) == (
        "2026-11-03",
        "2026-11-05",
        "Asia/Shanghai",
    )
    (shop,) = body["items"]
    assert (shop["slug"], shop["last_active_on"]) == (m.slug, "2026-11-04")
    # Products picked when the market was made; the link and the first sale ten minutes on.
    assert shop["activation"] == {
        "first_product_at": "2026-11-02T23:30:00Z",
        "first_link_at": "2026-11-02T23:40:00Z",
        "first_sale_at": "2026-11-02T23:40:00Z",
    }
    # 4 units at 11,000 on day 1 and 3 on day 2; 2,000 a unit earned (10% commission and a
    # 10% markup), released at completion.
    assert (shop["clicks"], shop["unique_visitors"], shop["orders"], shop["completed_orders"]) == (
        1,
        1,
        3,
        3,
    )
    assert shop["money"] == [
        {"currency": "CNY", "gmv_minor": 77_000, "refunds_minor": 0, "earnings_minor": 14_000}
    ]
    # Inactive for a day (nothing today), not for two (a sale yesterday).
    idle = await client.get(
        f"/v1/organisations/{org_id}/cohort", params={"inactive_days": 1}, headers=staff.headers
    )
    assert [s["shop_id"] for s in idle.json()["items"]] == [shop["shop_id"]]
    busy = await client.get(
        f"/v1/organisations/{org_id}/cohort", params={"inactive_days": 2}, headers=staff.headers
    )
    assert busy.json()["items"] == []

    days = await client.get(
        f"/v1/organisations/{org_id}/cohort/days", params=RANGE, headers=admin.headers
    )
    assert days.status_code == 200, days.text
    assert days.json()["cohort_shops"] == 1
    figures = {
        d["day"]: (
            d["shops_with_orders"],
            d["clicks"],
            d["orders"],
            d["completed_orders"],
            d["money"],
        )
        for d in days.json()["days"]
    }

    def cny(gmv: int, earned: int) -> list[dict[str, Any]]:
        return [{"currency": "CNY", "gmv_minor": gmv, "refunds_minor": 0, "earnings_minor": earned}]

    assert figures == {
        "2026-11-03": (1, 1, 2, 2, cny(44_000, 8_000)),
        "2026-11-04": (1, 0, 1, 1, cny(33_000, 6_000)),
        "2026-11-05": (0, 0, 0, 0, []),
    }
    too_long = await client.get(
        f"/v1/organisations/{org_id}/cohort/days",
        params={"since": "2026-01-01", "until": "2026-11-05"},
        headers=admin.headers,
    )
    assert_problem(too_long, 422, "invalid_date_range")

    # A notice to the cohort: recorded as an event for the app, read by the keeper.
    sent = await client.post(
        f"/v1/organisations/{org_id}/notices",
        json={"kind": "task", "title": "本周任务", "body": "分享三次新品链接\n周五前完成"},
        headers=staff.headers,
    )
    assert sent.status_code == 201, sent.text
    notice = sent.json()
    assert (notice["recipients"], notice["reads"]) == (1, 0)
    (event,) = await events(session, "organisation.notice")
    assert event == {
        "notice_id": notice["id"],
        "organisation_id": org_id,
        "kind": "task",
        "title": "本周任务",
        "recipients": 1,
    }
    owner = await session.scalar(
        text("SELECT owner_id::text FROM events WHERE type = 'organisation.notice'")
    )
    assert owner == org_id
    inbox = await client.get("/v1/shops/mine/notices", headers=keeper.headers)
    ((item),) = inbox.json()["items"]
    assert (item["id"], item["read_at"], item["organisation_name"]) == (
        notice["id"],
        None,
        "昆明青年创业联盟",
    )
    unread = await client.get(
        f"/v1/organisations/{org_id}/notices/{notice['id']}/recipients",
        params={"read": "false"},
        headers=staff.headers,
    )
    assert [r["slug"] for r in unread.json()["items"]] == [m.slug]
    for _ in range(2):  # reading twice counts once
        read = await client.post(
            f"/v1/shops/mine/notices/{notice['id']}/read", headers=keeper.headers
        )
        assert read.status_code == 200, read.text
        assert read.json()["read_at"] is not None
    seen = await client.get(
        f"/v1/organisations/{org_id}/notices/{notice['id']}", headers=admin.headers
    )
    assert (seen.json()["recipients"], seen.json()["reads"]) == (1, 1)
    readers = await client.get(
        f"/v1/organisations/{org_id}/notices/{notice['id']}/recipients",
        params={"read": "true"},
        headers=staff.headers,
    )
    assert [r["slug"] for r in readers.json()["items"]] == [m.slug]
    # The moved shop was not in the cohort when it was sent.
    await _fresh(client, newcomer)
    elsewhere = await client.post(
        f"/v1/shops/mine/notices/{notice['id']}/read", headers=newcomer.headers
    )
    assert_problem(elsewhere, 404, "notice_not_found")
