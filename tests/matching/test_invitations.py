"""Suppliers invite recommended shops: Idempotency-Key, an event with ids only, one invitation
per product and shop, tenancy, and a shop that lists, accepts or dismisses its invitations."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import assert_problem
from tests.matching.helpers import NOW, World, compute, world
from tests.orders.helpers import events
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock


def _invite_path(w: World, product: str, shop_id: str, supplier_id: str | None = None) -> str:
    return (
        f"/v1/suppliers/{supplier_id or w.s.id}/products/{product}/recommended-shops/"
        f"{shop_id}/invitations"
    )


def _key(value: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": value or str(uuid.uuid4())}


async def _ready(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, clock: Clock
) -> World:
    clock.freeze(NOW)
    w = await world(client, session)
    await compute(session, settings, clock)
    return w


async def test_inviting_a_recommended_shop_records_an_event_with_ids_only(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    w = await _ready(client, session, settings, test_clock)
    t2 = w.s.product("t2")
    key = _key()

    response = await client.post(_invite_path(w, t2, w.a.id), headers={**w.s.key, **key})

    assert response.status_code == 201, response.text
    invitation = response.json()
    assert invitation["status"] == "pending"
    assert (invitation["supplier_id"], invitation["product_id"], invitation["shop_id"]) == (
        w.s.id,
        t2,
        w.a.id,
    )
    assert invitation["decided_at"] is None
    assert await events(session, "recommendation.invited") == [
        {
            "invitation_id": invitation["id"],
            "shop_id": w.a.id,
            "product_id": t2,
            "supplier_id": w.s.id,
        }
    ]
    owner = await session.scalar(
        text("SELECT owner_id FROM events WHERE type = 'recommendation.invited'")
    )
    assert str(owner) == w.a.id  # the shop's event, for the app to notify its keeper

    # A retry with the key answers the first response and records nothing more.
    replay = await client.post(_invite_path(w, t2, w.a.id), headers={**w.s.key, **key})
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == invitation
    # The key on another request is refused; a new key is a second invitation: refused too.
    reused = await client.post(_invite_path(w, t2, w.b.id), headers={**w.s.key, **key})
    assert_problem(reused, 422, "idempotency_key_reused")
    again = await client.post(_invite_path(w, t2, w.a.id), headers={**w.s.key, **_key()})
    body = assert_problem(again, 409, "already_invited")
    assert body["invitation_id"] == invitation["id"]
    assert len(await events(session, "recommendation.invited")) == 1

    listed = await client.get(
        f"/v1/suppliers/{w.s.id}/products/{t2}/recommended-shops", headers=w.s.key
    )
    statuses = {i["shop_id"]: i["invitation_status"] for i in listed.json()["items"]}
    assert statuses == {w.a.id: "pending", w.b.id: None}


async def test_invitations_are_refused_with_stable_codes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    w = await _ready(client, session, settings, test_clock)
    t2 = w.s.product("t2")

    missing = await client.post(_invite_path(w, t2, w.a.id), headers=w.s.key)
    assert_problem(missing, 400, "idempotency_key_missing")
    # C's buyers like snacks: it is not among tea's recommended shops.
    not_recommended = await client.post(_invite_path(w, t2, w.c.id), headers={**w.s.key, **_key()})
    assert_problem(not_recommended, 404, "recommended_shop_not_found")
    nobody = await client.post(
        _invite_path(w, t2, str(uuid.uuid4())), headers={**w.s.key, **_key()}
    )
    assert_problem(nobody, 404, "recommended_shop_not_found")
    # B carries t1.
    carried = await client.post(
        _invite_path(w, w.s.product("t1"), w.b.id), headers={**w.s.key, **_key()}
    )
    assert_problem(carried, 409, "already_in_shop")
    # Another supplier cannot invite for s's product, under its own id or s's.
    theirs = await client.post(
        _invite_path(w, t2, w.a.id, w.other.id), headers={**w.other.key, **_key()}
    )
    assert_problem(theirs, 404, "product_not_found")
    foreign = await client.post(_invite_path(w, t2, w.a.id), headers={**w.other.key, **_key()})
    assert_problem(foreign, 404, "supplier_not_found")
    # An API key without products:write may read the recommended shops but not invite.
    read_only = await client.post(
        f"/v1/suppliers/{w.s.id}/api-keys",
        json={"name": "BI", "scopes": ["products:read"]},
        headers=w.s.owner.headers,
    )
    reader = {"Authorization": f"Bearer {read_only.json()['key']}"}
    scoped = await client.post(_invite_path(w, t2, w.a.id), headers={**reader, **_key()})
    assert_problem(scoped, 403, "insufficient_scope")
    bad_id = await client.post(_invite_path(w, t2, "nope"), headers={**w.s.key, **_key()})
    assert bad_id.status_code == 422
    assert bad_id.headers["content-type"] == "application/problem+json"
    # Off sale since the run: no invitation to what cannot be sold.
    await session.execute(
        text("UPDATE products SET status = 'archived' WHERE id = :id"), {"id": uuid.UUID(t2)}
    )
    await session.commit()
    archived = await client.post(_invite_path(w, t2, w.a.id), headers={**w.s.key, **_key()})
    assert_problem(archived, 409, "product_not_on_sale")
    assert await events(session, "recommendation.invited") == []


async def test_a_shop_lists_accepts_and_dismisses_its_invitations(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    w = await _ready(client, session, settings, test_clock)
    sent = []
    for product in ("t2", "t3"):
        response = await client.post(
            _invite_path(w, w.s.product(product), w.a.id), headers={**w.s.key, **_key()}
        )
        if product == "t3":
            # Tea at 300–1,000: A showed no interest at that price, so it is not recommended.
            assert_problem(response, 404, "recommended_shop_not_found")
            continue
        assert response.status_code == 201, response.text
        sent.append(response.json()["id"])
    snacks = await client.get(
        f"/v1/suppliers/{w.s.id}/products/{w.s.product('snack_carried')}/recommended-shops",
        headers=w.s.key,
    )
    assert snacks.json()["items"] == []  # only C likes snacks, and C carries it

    listed = await client.get("/v1/shops/mine/invitations", headers=w.a.keeper.headers)
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item["id"] == sent[0]
    assert item["status"] == "pending"
    assert item["product_id"] == w.s.product("t2")
    assert item["title"] == "Product t2"
    assert item["supplier_id"] == w.s.id
    assert item["supplier_name"] == "Test Farm"
    assert set(item) == {
        "id",
        "status",
        "product_id",
        "title",
        "image_url",
        "supplier_id",
        "supplier_name",
        "created_at",
        "decided_at",
    }
    # Other shops see none of A's, and cannot act on them.
    b_list = await client.get("/v1/shops/mine/invitations", headers=w.b.keeper.headers)
    assert b_list.json()["items"] == []
    b_accept = await client.post(
        f"/v1/shops/mine/invitations/{sent[0]}/accept", headers=w.b.keeper.headers
    )
    assert_problem(b_accept, 404, "invitation_not_found")

    accepted = await client.post(
        f"/v1/shops/mine/invitations/{sent[0]}/accept", headers=w.a.keeper.headers
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["decided_at"] == "2026-12-10T04:00:00Z"
    selection = await client.get("/v1/shops/mine/products", headers=w.a.keeper.headers)
    assert w.s.product("t2") in {p["product_id"] for p in selection.json()["items"]}
    # Accepting again changes nothing; dismissing an accepted one is refused.
    again = await client.post(
        f"/v1/shops/mine/invitations/{sent[0]}/accept", headers=w.a.keeper.headers
    )
    assert again.status_code == 200
    assert again.json() == accepted.json()
    dismissed = await client.post(
        f"/v1/shops/mine/invitations/{sent[0]}/dismiss", headers=w.a.keeper.headers
    )
    assert_problem(dismissed, 409, "invitation_decided")
    # Now carried: no longer recommended to A, nor A to the supplier for it.
    mine = await client.get("/v1/shops/mine/recommendations", headers=w.a.keeper.headers)
    assert w.s.product("t2") not in {i["product_id"] for i in mine.json()["items"]}
    shops = await client.get(
        f"/v1/suppliers/{w.s.id}/products/{w.s.product('t2')}/recommended-shops",
        headers=w.s.key,
    )
    assert [i["shop_id"] for i in shops.json()["items"]] == [w.b.id]

    # B dismisses its own; it stays dismissed, and the supplier may not invite it again.
    to_b = await client.post(
        _invite_path(w, w.s.product("t2"), w.b.id), headers={**w.s.key, **_key()}
    )
    assert to_b.status_code == 201, to_b.text
    b_dismiss = await client.post(
        f"/v1/shops/mine/invitations/{to_b.json()['id']}/dismiss", headers=w.b.keeper.headers
    )
    assert b_dismiss.status_code == 200, b_dismiss.text
    assert b_dismiss.json()["status"] == "dismissed"
    b_accept = await client.post(
        f"/v1/shops/mine/invitations/{to_b.json()['id']}/accept", headers=w.b.keeper.headers
    )
    assert_problem(b_accept, 409, "invitation_decided")
    reinvite = await client.post(
        _invite_path(w, w.s.product("t2"), w.b.id), headers={**w.s.key, **_key()}
    )
    assert_problem(reinvite, 409, "already_invited")
    pending = await client.get(
        "/v1/shops/mine/invitations", params={"status": "pending"}, headers=w.b.keeper.headers
    )
    assert pending.json()["items"] == []
    done = await client.get(
        "/v1/shops/mine/invitations", params={"status": "dismissed"}, headers=w.b.keeper.headers
    )
    assert [i["id"] for i in done.json()["items"]] == [to_b.json()["id"]]
    bad_status = await client.get(
        "/v1/shops/mine/invitations", params={"status": "maybe"}, headers=w.b.keeper.headers
    )
    assert bad_status.status_code == 422
    unknown = await client.post(
        f"/v1/shops/mine/invitations/{uuid.uuid4()}/dismiss", headers=w.b.keeper.headers
    )
    assert_problem(unknown, 404, "invitation_not_found")
