"""Tenancy of every order route: a foreign caller finds nothing (404), never another's data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import Actor, add_to_shop, assert_problem, new_actor, open_shop
from tests.factories import api_key, bearer
from tests.orders.helpers import (
    ADDRESS,
    Headers,
    Market,
    Supply,
    buyer_headers,
    checkout,
    key,
    market,
    pay,
    supplier_act,
)
from xiaopu.orders import endpoints

ALICE_ADDRESS = {**ADDRESS, "recipient": "李爱丽", "phone": "13911112222", "line1": "翠湖路 1 号"}
BOB_ADDRESS = {**ADDRESS, "recipient": "张博", "phone": "13733334444", "line1": "北京路 9 号"}
GUEST_ADDRESS = {**ADDRESS, "recipient": "赵客", "phone": "13655556666", "line1": "人民路 5 号"}
PRIVATE = [
    "13911112222",
    "13733334444",
    "13655556666",
    "李爱丽",
    "张博",
    "赵客",
    "翠湖路",
    "北京路",
]


@dataclass
class World:
    """Two shops, two suppliers, two signed-in buyers and a guest, with paid orders:

    - alice's order in shop 1 holds a line from supplier A and one from supplier B;
    - bob's order in shop 2 holds a line from supplier A;
    - the guest's order in shop 1 holds a line from supplier B.
    """

    m: Market
    keeper2: Actor
    slug2: str
    alice: Actor
    bob: Actor
    alice_order: dict[str, Any]
    bob_order: dict[str, Any]
    guest_order: dict[str, Any]

    @property
    def a(self) -> Supply:
        return self.m.suppliers[0]

    @property
    def b(self) -> Supply:
        return self.m.suppliers[1]

    def part(self, order: dict[str, Any], supply: Supply) -> dict[str, Any]:
        parts: list[dict[str, Any]] = order["supplier_orders"]
        (found,) = [p for p in parts if p["supplier_id"] == supply.id]
        return found


async def world(client: httpx.AsyncClient, session: AsyncSession) -> World:
    m = await market(client, session, suppliers=2)
    a, b = m.suppliers
    keeper2 = await new_actor(client)
    shop2 = await open_shop(client, keeper2.headers)
    for supply in (a, b):
        added = await add_to_shop(client, keeper2.headers, supply.products[0])
        assert added.status_code == 201, added.text
    alice = await new_actor(client)
    bob = await new_actor(client)
    alice_order = await checkout(
        client,
        m.slug,
        [(a.variants[0], 1), (b.variants[0], 2)],
        headers=alice.headers,
        address=ALICE_ADDRESS,
    )
    bob_order = await checkout(
        client, shop2["slug"], [(a.variants[0], 1)], headers=bob.headers, address=BOB_ADDRESS
    )
    guest_order = await checkout(client, m.slug, [(b.variants[0], 1)], address=GUEST_ADDRESS)
    assert alice_order["access_token"] is None
    assert guest_order["access_token"].startswith("xpo_")
    for order in (alice_order, bob_order, guest_order):
        assert (await pay(client, order))["result"]["outcome"] == "applied"
    return World(m, keeper2, shop2["slug"], alice, bob, alice_order, bob_order, guest_order)


async def deliver(client: httpx.AsyncClient, supply: Supply, part_id: str) -> None:
    shipped = await supplier_act(
        client, supply, part_id, "ship", {"carrier": "SF", "tracking_number": f"SF{part_id[:8]}"}
    )
    assert shipped.status_code == 200, shipped.text
    delivered = await supplier_act(client, supply, part_id, "deliver")
    assert delivered.status_code == 200, delivered.text


def line_of(order: dict[str, Any], supply: Supply) -> str:
    for part in order["supplier_orders"]:
        if part["supplier_id"] == supply.id:
            line_id: str = part["lines"][0]["id"]
            return line_id
    raise AssertionError("no line of this supplier")


def assert_private(response: httpx.Response) -> None:
    """Nothing of any buyer's contact details is in the body."""
    for secret in PRIVATE:
        assert secret not in response.text, secret


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: Headers,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    if method == "GET":
        return await client.get(url, headers=headers)
    return await client.post(url, json=body, headers={**headers, **key()})


# Buyers ------------------------------------------------------------------------------------


async def test_a_buyers_order_is_not_found_by_anyone_else(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    alice_url = f"/v1/orders/{w.alice_order['id']}"
    guest_url = f"/v1/orders/{w.guest_order['id']}"
    guest = buyer_headers(w.guest_order)

    mine = await client.get(alice_url, headers=w.alice.headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["address"]["phone"].endswith("13911112222")
    theirs = await client.get(guest_url, headers=guest)
    assert theirs.status_code == 200, theirs.text

    foreign: list[tuple[str, Headers]] = [
        (alice_url, w.bob.headers),  # another signed-in buyer
        (alice_url, w.m.keeper.headers),  # the shopkeeper the order was placed with
        (alice_url, guest),  # a guest token of another order
        (alice_url, {"X-Order-Token": "xpo_" + "x" * 32}),  # a made-up token
        (alice_url, {}),  # nobody
        (guest_url, w.alice.headers),
        (guest_url, {"X-Order-Token": w.guest_order["access_token"][:-1] + "A"}),
        (guest_url, {}),
        (f"/v1/orders/{uuid.uuid4()}", w.alice.headers),  # no such order at all
    ]
    for url, headers in foreign:
        response = await client.get(url, headers=headers)
        assert_problem(response, 404, "order_not_found")
        assert_private(response)
        # Nor can they ask to pay for it (and learn whether it is paid).
        asked = await client.post(f"{url}/payment", headers=headers)
        assert_problem(asked, 404, "order_not_found")
        assert_private(asked)
    # The buyers themselves learn it is paid already.
    for url, headers in ((alice_url, w.alice.headers), (guest_url, guest)):
        asked = await client.post(f"{url}/payment", headers=headers)
        assert_problem(asked, 409, "order_not_payable")

    # A supplier's API key is not a person: refused, with nothing of the order.
    by_key = await client.get(alice_url, headers=w.a.headers)
    assert_problem(by_key, 401, "invalid_token")


async def test_a_signed_in_buyers_bearer_alone_reads_their_order(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    await deliver(client, w.a, w.part(w.alice_order, w.a)["id"])
    url = f"/v1/orders/{w.alice_order['id']}"
    line = line_of(w.alice_order, w.a)

    # No credentials at all: as if the order did not exist.
    assert_problem(await client.get(url), 404, "order_not_found")
    assert_problem(await client.get(f"{url}/returns"), 404, "order_not_found")
    body = {"line_id": line, "quantity": 1, "reason": "破损"}
    assert_problem(await client.post(f"{url}/returns", json=body), 404, "order_not_found")
    # Another person's bearer alone: the same.
    assert_problem(await client.get(url, headers=w.bob.headers), 404, "order_not_found")
    # The buyer's bearer alone: their order and its returns.
    mine = await client.get(url, headers=w.alice.headers)
    assert mine.status_code == 200, mine.text
    asked = await client.post(f"{url}/returns", json=body, headers=w.alice.headers)
    assert asked.status_code == 201, asked.text
    listed = await client.get(f"{url}/returns", headers=w.alice.headers)
    assert [r["id"] for r in listed.json()] == [asked.json()["id"]]


async def test_buyers_list_only_their_own_orders(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    for actor, expected in [
        (w.alice, [w.alice_order["id"]]),
        (w.bob, [w.bob_order["id"]]),
        (w.m.keeper, []),  # the shop's keeper bought nothing
    ]:
        listed = await client.get("/v1/orders", headers=actor.headers)
        assert listed.status_code == 200, listed.text
        assert [o["id"] for o in listed.json()["items"]] == expected
    assert_problem(await client.get("/v1/orders"), 401, "unauthenticated")
    # A guest token is no way to list orders.
    assert_problem(
        await client.get("/v1/orders", headers=buyer_headers(w.guest_order)), 401, "unauthenticated"
    )


async def test_returns_of_an_order_are_its_buyers_alone(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    await deliver(client, w.a, w.part(w.alice_order, w.a)["id"])
    await deliver(client, w.b, w.part(w.guest_order, w.b)["id"])
    alice_returns = f"/v1/orders/{w.alice_order['id']}/returns"
    guest_returns = f"/v1/orders/{w.guest_order['id']}/returns"
    alice_line = line_of(w.alice_order, w.a)
    guest_line = line_of(w.guest_order, w.b)
    guest = buyer_headers(w.guest_order)

    foreign: list[tuple[str, str, Headers]] = [
        (alice_returns, alice_line, w.bob.headers),
        (alice_returns, alice_line, w.m.keeper.headers),
        (alice_returns, alice_line, guest),
        (alice_returns, alice_line, {"X-Order-Token": "xpo_" + "y" * 32}),
        (alice_returns, alice_line, {}),
        (guest_returns, guest_line, w.alice.headers),
        (guest_returns, guest_line, {}),
    ]
    for url, line_id, headers in foreign:
        asked = await client.post(
            url, json={"line_id": line_id, "quantity": 1, "reason": "not mine"}, headers=headers
        )
        assert_problem(asked, 404, "order_not_found")
        listed = await client.get(url, headers=headers)
        assert_problem(listed, 404, "order_not_found")

    # A buyer cannot return another order's line through their own order.
    borrowed = await client.post(
        alice_returns,
        json={"line_id": guest_line, "quantity": 1, "reason": "borrowed"},
        headers=w.alice.headers,
    )
    assert_problem(borrowed, 404, "line_not_found")
    borrowed = await client.post(
        guest_returns,
        json={"line_id": alice_line, "quantity": 1, "reason": "borrowed"},
        headers=guest,
    )
    assert_problem(borrowed, 404, "line_not_found")

    # None of that made a return; the buyers' own requests do, and each sees only theirs.
    assert (await client.get(alice_returns, headers=w.alice.headers)).json() == []
    assert (await client.get(guest_returns, headers=guest)).json() == []
    mine = await client.post(
        alice_returns,
        json={"line_id": alice_line, "quantity": 1, "reason": "破损"},
        headers=w.alice.headers,
    )
    assert mine.status_code == 201, mine.text
    theirs = await client.post(
        guest_returns, json={"line_id": guest_line, "quantity": 1, "reason": "破损"}, headers=guest
    )
    assert theirs.status_code == 201, theirs.text
    listed = await client.get(alice_returns, headers=w.alice.headers)
    assert [r["id"] for r in listed.json()] == [mine.json()["id"]]
    listed = await client.get(guest_returns, headers=guest)
    assert [r["id"] for r in listed.json()] == [theirs.json()["id"]]


async def test_a_guests_idempotency_key_replays_nothing_to_a_stranger(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    await deliver(client, w.b, w.part(w.guest_order, w.b)["id"])
    url = f"/v1/orders/{w.guest_order['id']}/returns"
    body = {"line_id": line_of(w.guest_order, w.b), "quantity": 1, "reason": "破损"}
    idem = key()
    asked = await client.post(url, json=body, headers={**buyer_headers(w.guest_order), **idem})
    assert asked.status_code == 201, asked.text

    # A stranger with no credentials repeats the guest's key and body.
    stranger = await client.post(url, json=body, headers=idem)
    assert "Idempotent-Replayed" not in stranger.headers
    assert_problem(stranger, 404, "order_not_found")


async def test_two_guests_idempotency_keys_do_not_collide_on_returns(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    b = w.b
    other = await checkout(
        client, w.m.slug, [(b.variants[0], 1)], address={**GUEST_ADDRESS, "phone": "13677778888"}
    )
    await pay(client, other)
    for order in (w.guest_order, other):
        await deliver(client, b, w.part(order, b)["id"])
    idem = key()
    for order in (w.guest_order, other):
        asked = await client.post(
            f"/v1/orders/{order['id']}/returns",
            json={"line_id": line_of(order, b), "quantity": 1, "reason": "破损"},
            headers={**buyer_headers(order), **idem},
        )
        assert asked.status_code == 201, asked.text


async def test_guests_checkout_idempotency_keys_are_scoped_to_their_phone(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    idem = key()
    bodies = [
        {"shop_slug": m.slug, "items": [{"variant_id": m.variant, "quantity": 1}], "address": a}
        for a in (GUEST_ADDRESS, BOB_ADDRESS)
    ]
    first = await client.post("/v1/orders", json=bodies[0], headers=idem)
    second = await client.post("/v1/orders", json=bodies[1], headers=idem)
    assert first.status_code == second.status_code == 201, second.text
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert first.json()["access_token"] != second.json()["access_token"]
    # The first guest's own retry is a replay of their order.
    again = await client.post("/v1/orders", json=bodies[0], headers=idem)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


# Shopkeepers -------------------------------------------------------------------------------


async def test_each_shopkeeper_sees_only_their_shops_orders_without_contact_details(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    one = await client.get("/v1/shops/mine/orders", headers=w.m.keeper.headers)
    assert one.status_code == 200, one.text
    assert [o["id"] for o in one.json()["items"]] == [w.guest_order["id"], w.alice_order["id"]]
    two = await client.get("/v1/shops/mine/orders", headers=w.keeper2.headers)
    assert two.status_code == 200, two.text
    assert [o["id"] for o in two.json()["items"]] == [w.bob_order["id"]]
    (bobs,) = two.json()["items"]
    assert [ln["variant_id"] for ln in bobs["lines"]] == [w.a.variants[0]]
    for response in (one, two):
        assert_private(response)
        for order in response.json()["items"]:
            assert "address" not in order
            assert "buyer_phone" not in order
            assert "note" not in order

    # A buyer with no shop, and nobody at all, see no shop's orders.
    assert_problem(
        await client.get("/v1/shops/mine/orders", headers=w.alice.headers), 404, "shop_not_found"
    )
    assert_problem(await client.get("/v1/shops/mine/orders"), 401, "unauthenticated")


# Suppliers ---------------------------------------------------------------------------------


def supplier_routes(
    supplier_id: str, part_id: str, return_id: str
) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/v1/suppliers/{supplier_id}"
    part = f"{base}/orders/{part_id}"
    return [
        ("GET", f"{base}/orders", None),
        ("GET", part, None),
        ("POST", f"{part}/accept", None),
        ("POST", f"{part}/ship", {"carrier": "SF", "tracking_number": "SF00000001"}),
        ("POST", f"{part}/deliver", None),
        ("POST", f"{part}/cancel", {"reason": "not mine to cancel"}),
        ("GET", f"{base}/returns", None),
        ("POST", f"{base}/returns/{return_id}/approve", {"restock": True}),
        ("POST", f"{base}/returns/{return_id}/reject", {"note": "no"}),
    ]


async def a_return(client: httpx.AsyncClient, w: World) -> str:
    """Supplier A's part of alice's order, delivered, with a requested return; its id."""
    await deliver(client, w.a, w.part(w.alice_order, w.a)["id"])
    asked = await client.post(
        f"/v1/orders/{w.alice_order['id']}/returns",
        json={"line_id": line_of(w.alice_order, w.a), "quantity": 1, "reason": "破损"},
        headers=w.alice.headers,
    )
    assert asked.status_code == 201, asked.text
    return_id: str = asked.json()["id"]
    return return_id


async def test_suppliers_find_nothing_of_another_supplier(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    return_id = await a_return(client, w)
    a_part = w.part(w.alice_order, w.a)["id"]
    stranger = await new_actor(client)

    # B's key, B's owner, a stranger and nobody on supplier A's routes.
    callers: list[tuple[Headers, int, str]] = [
        (w.b.headers, 404, "supplier_not_found"),
        (w.b.owner.headers, 404, "supplier_not_found"),
        (stranger.headers, 404, "supplier_not_found"),
        (w.alice.headers, 404, "supplier_not_found"),  # the buyer is no supplier either
        ({}, 401, "unauthenticated"),
    ]
    for headers, status, code in callers:
        for method, url, body in supplier_routes(w.a.id, a_part, return_id):
            response = await call(client, method, url, headers, body)
            assert_problem(response, status, code)
            assert_private(response)

    # B's key on B's own routes with A's supplier order or return: as if they did not exist.
    for method, url, body in supplier_routes(w.b.id, a_part, return_id):
        response = await call(client, method, url, w.b.headers, body)
        if url.endswith(("/orders", "/returns")):
            assert response.status_code == 200, response.text
            assert a_part not in response.text
            assert return_id not in response.text
        elif "/returns/" in url:
            assert_problem(response, 404, "return_not_found")
        else:
            assert_problem(response, 404, "supplier_order_not_found")

    # Nothing of A's changed: the part is still delivered, the return still requested.
    seen = await client.get(f"/v1/suppliers/{w.a.id}/orders/{a_part}", headers=w.a.headers)
    assert seen.json()["status"] == "delivered"
    assert seen.json()["cancel_reason"] is None
    returns = await client.get(f"/v1/suppliers/{w.a.id}/returns", headers=w.a.headers)
    assert [(r["id"], r["status"]) for r in returns.json()["items"]] == [(return_id, "requested")]


async def test_a_read_only_key_reads_but_cannot_act(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    return_id = await a_return(client, w)
    a_part = w.part(w.alice_order, w.a)["id"]
    reader = await api_key(client, w.a.id, w.a.owner.headers, ["orders:read"])
    products_only = await api_key(client, w.a.id, w.a.owner.headers, ["products:read"])
    for method, url, body in supplier_routes(w.a.id, a_part, return_id):
        response = await call(client, method, url, bearer(reader["key"]), body)
        if method == "GET":
            assert response.status_code == 200, response.text
        else:
            assert_problem(response, 403, "insufficient_scope")
        response = await call(client, method, url, bearer(products_only["key"]), body)
        assert_problem(response, 403, "insufficient_scope")
        assert_private(response)
    seen = await client.get(f"/v1/suppliers/{w.a.id}/orders/{a_part}", headers=w.a.headers)
    assert seen.json()["status"] == "delivered"


async def test_each_supplier_sees_only_its_part_of_a_shared_order(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    a_part = w.part(w.alice_order, w.a)
    b_part = w.part(w.alice_order, w.b)
    expected = {
        w.a.id: [w.part(w.bob_order, w.a)["id"], a_part["id"]],
        w.b.id: [w.part(w.guest_order, w.b)["id"], b_part["id"]],
    }
    for supply, own, other in [(w.a, a_part, b_part), (w.b, b_part, a_part)]:
        listed = await client.get(f"/v1/suppliers/{supply.id}/orders", headers=supply.headers)
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        assert [p["id"] for p in items] == expected[supply.id]
        for item in items:
            assert [ln["variant_id"] for ln in item["lines"]] == [supply.variants[0]]
        one = await client.get(
            f"/v1/suppliers/{supply.id}/orders/{own['id']}", headers=supply.headers
        )
        assert one.status_code == 200, one.text
        assert one.json()["order_id"] == w.alice_order["id"]
        assert [ln["id"] for ln in one.json()["lines"]] == [ln["id"] for ln in own["lines"]]
        assert one.json()["total_minor"] == own["total_minor"]
        # The supplier ships it, so it sees where to.
        assert one.json()["address"]["recipient"] == "李爱丽"
        sibling = await client.get(
            f"/v1/suppliers/{supply.id}/orders/{other['id']}", headers=supply.headers
        )
        assert_problem(sibling, 404, "supplier_order_not_found")

    # A's fulfilment moves A's part alone.
    shipped = await supplier_act(
        client, w.a, a_part["id"], "ship", {"carrier": "SF", "tracking_number": "SF55550001"}
    )
    assert shipped.status_code == 200, shipped.text
    seen = await client.get(f"/v1/orders/{w.alice_order['id']}", headers=w.alice.headers)
    statuses = {p["id"]: p["status"] for p in seen.json()["supplier_orders"]}
    assert statuses == {a_part["id"]: "shipped", b_part["id"]: "paid"}


# Operators ---------------------------------------------------------------------------------


async def test_only_operators_see_and_decide_returns(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    w = await world(client, session)
    return_id = await a_return(client, w)
    decide = f"/v1/operator/returns/{return_id}/decide"
    callers: list[tuple[Headers, int, str]] = [
        (w.alice.headers, 403, "forbidden"),  # the buyer
        (w.m.keeper.headers, 403, "forbidden"),
        (w.a.owner.headers, 403, "forbidden"),  # the supplier's owner
        (w.a.headers, 401, "invalid_token"),  # an API key is not a person
        ({}, 401, "unauthenticated"),
    ]
    for headers, status, code in callers:
        listed = await client.get("/v1/operator/returns", headers=headers)
        assert_problem(listed, status, code)
        decided = await call(client, "POST", decide, headers, {"decision": "approve"})
        assert_problem(decided, status, code)
        refunds = await client.get("/v1/operator/refunds", headers=headers)
        assert_problem(refunds, status, code)
        retry = await call(client, "POST", f"/v1/operator/refunds/{uuid.uuid4()}/retry", headers)
        assert_problem(retry, status, code)

    returns = await client.get(f"/v1/suppliers/{w.a.id}/returns", headers=w.a.headers)
    assert [r["status"] for r in returns.json()["items"]] == ["requested"]
    seen = await client.get("/v1/operator/returns", headers=w.m.op.headers)
    assert seen.status_code == 200, seen.text
    assert return_id in [r["id"] for r in seen.json()["items"]]
    decided = await call(client, "POST", decide, w.m.op.headers, {"decision": "reject"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["decided_by"] == "operator"


# Callbacks and the sandbox -----------------------------------------------------------------


async def test_callbacks_need_a_signature_and_a_known_target(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    fake = {
        "event_id": "evt_fake",
        "kind": "paid",
        "payment_ref": order["payment"]["provider_ref"],
        "amount_minor": order["total_minor"],
        "currency": "CNY",
    }
    unsigned = await client.post("/v1/payments/sandbox/callbacks", json=fake)
    assert_problem(unsigned, 401, "invalid_callback_signature")
    unknown = await client.post("/v1/payments/stripe/callbacks", json=fake)
    assert_problem(unknown, 404, "unknown_payment_provider")
    carrier = await client.post(
        "/v1/carriers/callbacks",
        json={"carrier": "sf", "tracking_number": "SF00000001", "status": "delivered"},
    )
    assert_problem(carrier, 401, "invalid_callback_signature")
    nowhere = await client.post(f"/v1/sandbox/payments/sbx_pay_{uuid.uuid4().hex}/pay")
    assert_problem(nowhere, 404, "payment_not_found")
    seen = await client.get(f"/v1/orders/{order['id']}", headers=buyer_headers(order))
    assert seen.json()["status"] == "pending_payment"


# Coverage ----------------------------------------------------------------------------------

COVERED = {
    ("POST", "/v1/orders"),
    ("GET", "/v1/orders"),
    ("GET", "/v1/orders/{order_id}"),
    ("POST", "/v1/orders/{order_id}/payment"),
    ("POST", "/v1/orders/{order_id}/returns"),
    ("GET", "/v1/orders/{order_id}/returns"),
    ("GET", "/v1/shops/mine/orders"),
    ("GET", "/v1/suppliers/{supplier_id}/orders"),
    ("GET", "/v1/suppliers/{supplier_id}/orders/{supplier_order_id}"),
    ("POST", "/v1/suppliers/{supplier_id}/orders/{supplier_order_id}/accept"),
    ("POST", "/v1/suppliers/{supplier_id}/orders/{supplier_order_id}/ship"),
    ("POST", "/v1/suppliers/{supplier_id}/orders/{supplier_order_id}/deliver"),
    ("POST", "/v1/suppliers/{supplier_id}/orders/{supplier_order_id}/cancel"),
    ("GET", "/v1/suppliers/{supplier_id}/returns"),
    ("POST", "/v1/suppliers/{supplier_id}/returns/{return_id}/approve"),
    ("POST", "/v1/suppliers/{supplier_id}/returns/{return_id}/reject"),
    ("GET", "/v1/operator/returns"),
    ("POST", "/v1/operator/returns/{return_id}/decide"),
    ("GET", "/v1/operator/refunds"),
    ("POST", "/v1/operator/refunds/{refund_id}/retry"),
    ("POST", "/v1/payments/{provider}/callbacks"),
    ("POST", "/v1/carriers/callbacks"),
    ("POST", "/v1/sandbox/payments/{provider_ref}/pay"),
}


def test_every_order_route_is_covered_here() -> None:
    """A new route in orders/endpoints.py needs its tenancy test (and an entry above)."""
    routers = [
        endpoints.router,
        endpoints.shop_router,
        endpoints.supplier_router,
        endpoints.payment_router,
        endpoints.carrier_router,
        endpoints.operator_router,
        endpoints.operator_refunds_router,
    ]
    routes = {
        (method, route.path)
        for r in routers
        for route in r.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert routes == COVERED
