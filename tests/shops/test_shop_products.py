"""A shop's products: adding with markup and blurb, the trial limit, isolation, the public view."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import (
    Actor,
    active_supplier,
    add_to_shop,
    assert_problem,
    assert_validation_error,
    bulk,
    create_product,
    new_actor,
    open_shop,
    operator,
    product_body,
    public_ids,
    variant_body,
)
from tests.factories import supplier
from xiaopu.config import Settings
from xiaopu.shops.service import record_completed_sale

MINE = "/v1/shops/mine/products"


@dataclass
class Setup:
    op: Actor  # operator, supplier owner and shopkeeper at once
    supplier_id: str
    shop: dict[str, Any]


async def setup(client: httpx.AsyncClient, session: AsyncSession) -> Setup:
    op = await operator(client, session)
    supplier_id = await active_supplier(client, op.headers, op.headers)
    shop = await open_shop(client, op.headers)
    return Setup(op, supplier_id, shop)


async def product(s: Setup, client: httpx.AsyncClient, ref: str, **overrides: Any) -> str:
    body = product_body(ref, **overrides)
    return str((await create_product(client, s.supplier_id, s.op.headers, body))["id"])


async def my_products(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(MINE, params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    return {p["product_id"]: p for p in response.json()["items"]}


async def test_add_with_blurb_and_markup(client: httpx.AsyncClient, session: AsyncSession) -> None:
    s = await setup(client, session)
    pid = await product(s, client, "TEA", title="普洱茶", markup_ceiling_bps=1500)

    response = await add_to_shop(client, s.op.headers, pid, blurb="我每天都喝", markup_bps=1500)

    assert response.status_code == 201, response.text
    added = response.json()
    assert added["product_id"] == pid
    assert added["title"] == "普洱茶"
    assert added["blurb"] == "我每天都喝"
    assert added["markup_bps"] == 1500
    assert added["markup_ceiling_bps"] == 1500
    assert added["on_sale"] is True
    assert (await my_products(client, s.op.headers)) == {pid: added}
    mine = await client.get("/v1/shops/mine", headers=s.op.headers)
    assert mine.json()["product_count"] == 1


async def test_markup_defaults_to_zero(client: httpx.AsyncClient, session: AsyncSession) -> None:
    s = await setup(client, session)
    pid = await product(s, client, "TEA", markup_ceiling_bps=0)

    response = await add_to_shop(client, s.op.headers, pid)

    assert response.status_code == 201, response.text
    assert response.json()["markup_bps"] == 0
    assert response.json()["blurb"] is None


async def test_markup_above_the_ceiling_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    s = await setup(client, session)
    pid = await product(s, client, "TEA", markup_ceiling_bps=1000)

    above = await add_to_shop(client, s.op.headers, pid, markup_bps=1001)
    body = assert_problem(above, 422, "markup_above_ceiling")
    assert body["markup_ceiling_bps"] == 1000
    assert await my_products(client, s.op.headers) == {}

    ok = await add_to_shop(client, s.op.headers, pid, markup_bps=1000)
    assert ok.status_code == 201, ok.text
    raised = await client.patch(f"{MINE}/{pid}", json={"markup_bps": 1001}, headers=s.op.headers)
    assert_problem(raised, 422, "markup_above_ceiling")
    assert (await my_products(client, s.op.headers))[pid]["markup_bps"] == 1000


async def test_markup_outside_0_to_10000_is_422(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    s = await setup(client, session)
    pid = await product(s, client, "TEA", markup_ceiling_bps=10_000)

    for markup in (-1, 10_001):
        response = await add_to_shop(client, s.op.headers, pid, markup_bps=markup)
        assert_validation_error(response, "body", "markup_bps")
    assert (await add_to_shop(client, s.op.headers, pid, markup_bps=10_000)).status_code == 201
    for markup in (-1, 10_001):
        response = await client.patch(
            f"{MINE}/{pid}", json={"markup_bps": markup}, headers=s.op.headers
        )
        assert_validation_error(response, "body", "markup_bps")


async def test_add_validates_the_body(client: httpx.AsyncClient, session: AsyncSession) -> None:
    s = await setup(client, session)
    pid = await product(s, client, "TEA")

    for body, loc in (
        ({}, "product_id"),
        ({"product_id": "not-a-uuid"}, "product_id"),
        ({"product_id": pid, "blurb": "x" * 501}, "blurb"),
        ({"product_id": pid, "shop_id": str(uuid.uuid4())}, "shop_id"),
    ):
        response = await client.post(MINE, json=body, headers=s.op.headers)
        assert_validation_error(response, "body", loc)


async def test_adding_twice_is_a_conflict(client: httpx.AsyncClient, session: AsyncSession) -> None:
    s = await setup(client, session)
    pid = await product(s, client, "TEA")
    assert (await add_to_shop(client, s.op.headers, pid)).status_code == 201

    again = await add_to_shop(client, s.op.headers, pid, blurb="again")

    assert_problem(again, 409, "already_in_shop")
    assert (await my_products(client, s.op.headers))[pid]["blurb"] is None


async def test_only_products_on_sale_can_be_added(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    s = await setup(client, session)
    draft = await product(s, client, "DRAFT", status="draft")
    archived = await product(s, client, "ARCHIVED", status="archived")
    pending_supplier, _ = await supplier(client, s.op.headers)
    pending = await create_product(client, pending_supplier, s.op.headers, product_body("P"))

    for pid in (draft, archived, pending["id"], str(uuid.uuid4())):
        response = await add_to_shop(client, s.op.headers, pid)
        assert_problem(response, 404, "product_not_found")
    assert await my_products(client, s.op.headers) == {}


async def test_update_blurb_and_markup_then_remove(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    s = await setup(client, session)
    pid = await product(s, client, "TEA", markup_ceiling_bps=2000)
    await add_to_shop(client, s.op.headers, pid, blurb="old", markup_bps=100)

    markup = await client.patch(f"{MINE}/{pid}", json={"markup_bps": 2000}, headers=s.op.headers)
    assert markup.status_code == 200, markup.text
    assert (markup.json()["markup_bps"], markup.json()["blurb"]) == (2000, "old")
    blurb = await client.patch(f"{MINE}/{pid}", json={"blurb": "new"}, headers=s.op.headers)
    assert (blurb.json()["markup_bps"], blurb.json()["blurb"]) == (2000, "new")
    cleared = await client.patch(f"{MINE}/{pid}", json={"blurb": None}, headers=s.op.headers)
    assert cleared.json()["blurb"] is None
    unknown = await client.patch(f"{MINE}/{pid}", json={"title": "x"}, headers=s.op.headers)
    assert_validation_error(unknown, "body", "title")

    removed = await client.delete(f"{MINE}/{pid}", headers=s.op.headers)
    assert removed.status_code == 204, removed.text
    assert await my_products(client, s.op.headers) == {}
    again = await client.delete(f"{MINE}/{pid}", headers=s.op.headers)
    assert_problem(again, 404, "not_in_shop")
    patched = await client.patch(f"{MINE}/{pid}", json={"blurb": "x"}, headers=s.op.headers)
    assert_problem(patched, 404, "not_in_shop")
    # Removing frees the place: the product can be added again.
    assert (await add_to_shop(client, s.op.headers, pid)).status_code == 201


async def test_my_products_show_what_went_off_sale(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    s = await setup(client, session)
    pid = await product(s, client, "TEA")
    await add_to_shop(client, s.op.headers, pid)

    archived = await client.patch(
        f"/v1/suppliers/{s.supplier_id}/products/{pid}",
        json={"status": "archived"},
        headers=s.op.headers,
    )
    assert archived.status_code == 200, archived.text

    assert (await my_products(client, s.op.headers))[pid]["on_sale"] is False
    blurb = await client.patch(f"{MINE}/{pid}", json={"blurb": "sold out"}, headers=s.op.headers)
    assert blurb.status_code == 200, blurb.text
    assert blurb.json()["on_sale"] is False


async def test_my_products_page_with_a_cursor(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    s = await setup(client, session)
    result = await bulk(
        client, s.supplier_id, s.op.headers, [product_body(f"P{i}") for i in range(5)]
    )
    assert result.json()["created"] == 5
    catalogue = await client.get(
        "/v1/catalogue/products", params={"limit": 100}, headers=s.op.headers
    )
    ids = [p["id"] for p in catalogue.json()["items"]]
    for pid in ids:
        assert (await add_to_shop(client, s.op.headers, pid)).status_code == 201

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(MINE, params=params, headers=s.op.headers)).json()
        assert len(page["items"]) <= 2
        seen += [p["product_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # most recently added first, each once

    public: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/v1/shops/{s.shop['slug']}/products", params=params)
        public += [p["id"] for p in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert public == seen


async def test_a_trial_shop_carries_30_products_until_it_becomes_standard(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    s = await setup(client, session)
    result = await bulk(
        client, s.supplier_id, s.op.headers, [product_body(f"P{i:02d}") for i in range(31)]
    )
    assert result.json()["created"] == 31
    page = await client.get("/v1/catalogue/products", params={"limit": 100}, headers=s.op.headers)
    ids = [p["id"] for p in page.json()["items"]]
    assert len(ids) == 31

    for pid in ids[:30]:
        response = await add_to_shop(client, s.op.headers, pid)
        assert response.status_code == 201, response.text
    refused = await add_to_shop(client, s.op.headers, ids[30])

    body = assert_problem(refused, 409, "shop_product_limit")
    assert body["product_limit"] == 30
    mine = (await client.get("/v1/shops/mine", headers=s.op.headers)).json()
    assert (mine["product_count"], mine["product_limit"]) == (30, 30)

    for _ in range(5):
        await record_completed_sale(session, settings, uuid.UUID(s.shop["id"]))
    await session.commit()
    allowed = await add_to_shop(client, s.op.headers, ids[30])
    assert allowed.status_code == 201, allowed.text
    mine = (await client.get("/v1/shops/mine", headers=s.op.headers)).json()
    assert (mine["level"], mine["product_count"], mine["product_limit"]) == ("standard", 31, None)


async def test_public_view_hides_what_is_not_for_sale(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    s = await setup(client, session)
    shown = await product(
        s,
        client,
        "SHOWN",
        variants=[variant_body("SHOWN-1", stock=5), variant_body("SHOWN-2", stock=0)],
    )
    archived = await product(s, client, "ARCHIVED")
    sold_out = await product(s, client, "SOLDOUT", variants=[variant_body("SO-1", stock=1)])
    drafted = await product(s, client, "DRAFTED")
    other_supplier = await active_supplier(client, s.op.headers, s.op.headers)
    suspended = (await create_product(client, other_supplier, s.op.headers, product_body("SUSP")))[
        "id"
    ]
    for pid in (shown, archived, sold_out, drafted, suspended):
        assert (await add_to_shop(client, s.op.headers, pid)).status_code == 201
    assert set(await public_ids(client, s.shop["slug"])) == {
        shown,
        archived,
        sold_out,
        drafted,
        suspended,
    }

    products_url = f"/v1/suppliers/{s.supplier_id}/products"
    for pid, status in ((archived, "archived"), (drafted, "draft")):
        response = await client.patch(
            f"{products_url}/{pid}", json={"status": status}, headers=s.op.headers
        )
        assert response.status_code == 200, response.text
    stock = await client.post(
        f"/v1/suppliers/{s.supplier_id}/stock",
        json={"items": [{"sku": "SO-1", "stock": 0}]},
        headers=s.op.headers,
    )
    assert stock.status_code == 200, stock.text
    suspend = await client.post(
        f"/v1/operator/suppliers/{other_supplier}/suspend",
        json={"reason": "fake goods"},
        headers=s.op.headers,
    )
    assert suspend.status_code == 200, suspend.text

    response = await client.get(f"/v1/shops/{s.shop['slug']}/products")
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert item["id"] == shown
    # Only the variant in stock is offered; buyers never see SKUs or stock counts.
    (variant,) = item["variants"]
    assert variant["price_minor"] == 1000
    assert set(variant) == {"id", "options", "price_minor", "currency"}
    # The shopkeeper still sees all five, marked off sale (stock does not matter there).
    on_sale = {pid: p["on_sale"] for pid, p in (await my_products(client, s.op.headers)).items()}
    assert on_sale == {
        shown: True,
        archived: False,
        sold_out: True,
        drafted: False,
        suspended: False,
    }


async def test_public_price_adds_the_markup_rounded_half_up(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    s = await setup(client, session)
    prices = {"A": 1000, "B": 999, "C": 3000, "D": 1001, "E": 12_345}
    pid = await product(
        s,
        client,
        "TEA",
        markup_ceiling_bps=2000,
        variants=[variant_body(sku, price_minor=price) for sku, price in prices.items()],
    )
    other = await product(s, client, "BIG", markup_ceiling_bps=2000)
    await add_to_shop(client, s.op.headers, pid, markup_bps=5, blurb="试试")
    await add_to_shop(client, s.op.headers, other, markup_bps=1050)

    response = await client.get(f"/v1/shops/{s.shop['slug']}/products")

    items = {p["id"]: p for p in response.json()["items"]}
    # 5 bps: 1000 → +0.5 → +1; 999 → +0.4995 → +0; 3000 → +1.5 → +2; 1001 → +0.5005 → +1;
    # 12345 → +6.1725 → +6.
    assert sorted(v["price_minor"] for v in items[pid]["variants"]) == sorted(
        [1001, 999, 3002, 1002, 12_351]
    )
    assert items[pid]["blurb"] == "试试"
    assert {v["currency"] for v in items[pid]["variants"]} == {"CNY"}
    # 1050 bps of 1000 = 105.
    assert [v["price_minor"] for v in items[other]["variants"]] == [1105]

    # Changing the markup changes the shop price.
    await client.patch(f"{MINE}/{pid}", json={"markup_bps": 2000}, headers=s.op.headers)
    response = await client.get(f"/v1/shops/{s.shop['slug']}/products")
    items = {p["id"]: p for p in response.json()["items"]}
    assert sorted(v["price_minor"] for v in items[pid]["variants"]) == sorted(
        [1200, 1199, 3600, 1201, 14_814]
    )


async def test_another_persons_calls_never_touch_my_shop(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The /mine routes act on the caller's own shop: B's calls cannot reach A's."""
    s = await setup(client, session)  # A
    pid = await product(s, client, "TEA", markup_ceiling_bps=2000)
    await add_to_shop(client, s.op.headers, pid, blurb="A's words", markup_bps=500)
    b = await new_actor(client)
    b_shop = await open_shop(client, b.headers, name="B's shop")

    renamed = await client.patch("/v1/shops/mine", json={"name": "B renamed"}, headers=b.headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["id"] == b_shop["id"]
    taken = await client.patch("/v1/shops/mine", json={"slug": s.shop["slug"]}, headers=b.headers)
    assert_problem(taken, 409, "slug_taken")
    patched = await client.patch(
        f"{MINE}/{pid}", json={"blurb": "B's words", "markup_bps": 2000}, headers=b.headers
    )
    assert_problem(patched, 404, "not_in_shop")
    removed = await client.delete(f"{MINE}/{pid}", headers=b.headers)
    assert_problem(removed, 404, "not_in_shop")
    assert (await my_products(client, b.headers)) == {}
    # B adding the same product only adds it to B's shop.
    assert (await add_to_shop(client, b.headers, pid, markup_bps=2000)).status_code == 201

    a_shop = (await client.get("/v1/shops/mine", headers=s.op.headers)).json()
    assert (a_shop["name"], a_shop["slug"], a_shop["product_count"]) == (
        s.shop["name"],
        s.shop["slug"],
        1,
    )
    a_selection = (await my_products(client, s.op.headers))[pid]
    assert (a_selection["blurb"], a_selection["markup_bps"]) == ("A's words", 500)
    a_public = (await client.get(f"/v1/shops/{s.shop['slug']}/products")).json()["items"]
    assert [v["price_minor"] for v in a_public[0]["variants"]] == [1050]
    b_public = (await client.get(f"/v1/shops/{b_shop['slug']}/products")).json()["items"]
    assert [v["price_minor"] for v in b_public[0]["variants"]] == [1200]


async def test_shop_product_routes_need_a_person(client: httpx.AsyncClient) -> None:
    pid = uuid.uuid4()

    for call in (
        client.get(MINE),
        client.post(MINE, json={"product_id": str(pid)}),
        client.patch(f"{MINE}/{pid}", json={"blurb": "x"}),
        client.delete(f"{MINE}/{pid}"),
        client.patch("/v1/shops/mine", json={"name": "x"}),
    ):
        assert_problem(await call, 401, "unauthenticated")
