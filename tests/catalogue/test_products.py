"""Suppliers' products: create, read, list, update; validation; API key scopes; isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import add_member
from tests.catalogue.helpers import (
    assert_problem,
    assert_validation_error,
    bulk,
    create_product,
    new_actor,
    product_body,
    variant_body,
)
from tests.factories import api_key, bearer, supplier
from xiaopu.models import MemberRole


def products_url(supplier_id: str) -> str:
    return f"/v1/suppliers/{supplier_id}/products"


async def test_create_returns_the_product_with_its_variants(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    body = product_body(
        "PUER",
        title="云南普洱茶饼",
        description="Aged raw pu-erh.",
        image_urls=["https://img.example.com/puer.jpg"],
        brand="云南茶园",
        return_window_days=14,
        variants=[
            variant_body(
                "PUER-B", price_minor=26800, options={"year": "2015"}, commission_bps=2000
            ),
            variant_body("PUER-A", price_minor=12800, weight_grams=400, low_stock_threshold=5),
        ],
    )

    created = await create_product(client, supplier_id, owner, body)

    assert created["supplier_id"] == supplier_id
    assert created["ref"] == "PUER"
    assert created["title"] == "云南普洱茶饼"
    assert created["brand"] == "云南茶园"
    assert created["return_window_days"] == 14
    assert created["image_urls"] == ["https://img.example.com/puer.jpg"]
    assert created["status"] == "active"
    by_sku = {v["sku"]: v for v in created["variants"]}
    assert set(by_sku) == {"PUER-A", "PUER-B"}
    assert by_sku["PUER-A"]["weight_grams"] == 400
    assert by_sku["PUER-A"]["commission_bps"] is None
    assert by_sku["PUER-A"]["low_stock_threshold"] == 5
    assert by_sku["PUER-B"]["options"] == {"year": "2015"}
    assert by_sku["PUER-B"]["commission_bps"] == 2000


async def test_defaults_draft_status_seven_day_return_window_and_no_markup(
    client: httpx.AsyncClient,
) -> None:
    supplier_id, owner = await supplier(client)
    body = product_body("P1")
    for field in ("status", "markup_ceiling_bps"):
        del body[field]

    created = await create_product(client, supplier_id, owner, body)

    assert created["status"] == "draft"
    assert created["return_window_days"] == 7
    assert created["markup_ceiling_bps"] == 0


async def test_get_and_list_products(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    ids = [
        (await create_product(client, supplier_id, owner, product_body(f"P{i}")))["id"]
        for i in range(3)
    ]

    got = await client.get(f"{products_url(supplier_id)}/{ids[0]}", headers=owner)
    assert got.status_code == 200, got.text
    assert got.json()["ref"] == "P0"
    assert [v["sku"] for v in got.json()["variants"]] == ["P0-A"]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get(products_url(supplier_id), params=params, headers=owner)
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 2
        seen += [p["id"] for p in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, each once


async def test_unknown_product_is_404(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    url = f"{products_url(supplier_id)}/{uuid.uuid4()}"

    assert_problem(await client.get(url, headers=owner), 404, "product_not_found")
    assert_problem(
        await client.patch(url, json={"title": "x"}, headers=owner), 404, "product_not_found"
    )


async def test_patch_changes_only_the_given_fields(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    created = await create_product(client, supplier_id, owner, product_body("P1", brand="Old"))
    url = f"{products_url(supplier_id)}/{created['id']}"

    response = await client.patch(
        url,
        json={
            "title": "新标题",
            "commission_bps": 2500,
            "status": "archived",
            "category_id": "food",
        },
        headers=owner,
    )

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["title"] == "新标题"
    assert updated["commission_bps"] == 2500
    assert updated["status"] == "archived"
    assert updated["category_id"] == "food"
    assert updated["brand"] == "Old"
    assert updated["variants"] == created["variants"]
    again = await client.get(url, headers=owner)
    assert again.json()["title"] == "新标题"


async def test_patch_with_null_brand_clears_it(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    created = await create_product(client, supplier_id, owner, product_body("P1", brand="Old"))

    response = await client.patch(
        f"{products_url(supplier_id)}/{created['id']}", json={"brand": None}, headers=owner
    )

    assert response.status_code == 200, response.text
    assert response.json()["brand"] is None


async def test_patch_validates(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    created = await create_product(client, supplier_id, owner, product_body("P1"))
    url = f"{products_url(supplier_id)}/{created['id']}"

    unknown = await client.patch(url, json={"category_id": "food.caviar"}, headers=owner)
    assert_problem(unknown, 422, "unknown_category")
    for body, loc in (
        ({"commission_bps": 10_001}, "commission_bps"),
        ({"commission_bps": -1}, "commission_bps"),
        ({"markup_ceiling_bps": 10_001}, "markup_ceiling_bps"),
        ({"status": "deleted"}, "status"),
        ({"ref": "OTHER"}, "ref"),
        ({"supplier_id": str(uuid.uuid4())}, "supplier_id"),
        ({"variants": []}, "variants"),
    ):
        assert_validation_error(await client.patch(url, json=body, headers=owner), "body", loc)

    unchanged = await client.get(url, headers=owner)
    assert unchanged.json()["category_id"] == "food.tea"
    assert unchanged.json()["commission_bps"] == 1000


async def test_a_repeated_ref_is_a_conflict(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    await create_product(client, supplier_id, owner, product_body("P1"))

    response = await client.post(
        products_url(supplier_id),
        json=product_body("P1", variants=[variant_body("NEW")]),
        headers=owner,
    )

    assert_problem(response, 409, "conflict")


async def test_a_sku_of_another_product_is_taken(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    await create_product(client, supplier_id, owner, product_body("P1"))

    response = await client.post(
        products_url(supplier_id),
        json=product_body("P2", variants=[variant_body("P1-A")]),
        headers=owner,
    )

    assert_problem(response, 409, "sku_taken")
    listed = await client.get(products_url(supplier_id), headers=owner)
    assert [p["ref"] for p in listed.json()["items"]] == ["P1"]


async def test_unknown_category_is_422(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    response = await client.post(
        products_url(supplier_id), json=product_body("P1", category_id="food.caviar"), headers=owner
    )

    body = assert_problem(response, 422, "unknown_category")
    assert "food.caviar" in body["detail"]


INVALID: list[tuple[str, dict[str, Any], tuple[str | int, ...]]] = [
    (
        "negative price",
        {"variants": [variant_body("S", price_minor=-1)]},
        ("variants", 0, "price_minor"),
    ),
    ("negative stock", {"variants": [variant_body("S", stock=-5)]}, ("variants", 0, "stock")),
    ("commission above 10000", {"commission_bps": 10_001}, ("commission_bps",)),
    ("commission below 0", {"commission_bps": -1}, ("commission_bps",)),
    (
        "variant commission above 10000",
        {"variants": [variant_body("S", commission_bps=10_001)]},
        ("variants", 0, "commission_bps"),
    ),
    ("markup ceiling above 10000", {"markup_ceiling_bps": 10_001}, ("markup_ceiling_bps",)),
    ("markup ceiling below 0", {"markup_ceiling_bps": -1}, ("markup_ceiling_bps",)),
    (
        "duplicate sku in one product",
        {"variants": [variant_body("S"), variant_body("S", price_minor=5)]},
        (),
    ),
    (
        "currency not ISO 4217",
        {"variants": [variant_body("S", currency="XYZ")]},
        ("variants", 0, "currency"),
    ),
    (
        "currency lower case",
        {"variants": [variant_body("S", currency="cny")]},
        ("variants", 0, "currency"),
    ),
    (
        "currency too long",
        {"variants": [variant_body("S", currency="CNYY")]},
        ("variants", 0, "currency"),
    ),
    ("no variants", {"variants": []}, ("variants",)),
    ("sku with spaces", {"variants": [variant_body("A B")]}, ("variants", 0, "sku")),
    ("return window above 90", {"return_window_days": 91}, ("return_window_days",)),
    ("blank title", {"title": "  "}, ("title",)),
    ("not a url", {"image_urls": ["javascript:alert(1)"]}, ("image_urls", 0)),
    ("unknown field", {"max_commission_bps": 9000}, ("max_commission_bps",)),
]


async def test_bad_input_is_a_clear_422(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)  # one account for every case: sign-ups are slow

    for case, change, loc in INVALID:
        response = await client.post(
            products_url(supplier_id), json=product_body("P1") | change, headers=owner
        )
        body = assert_problem(response, 422, "validation_error")
        if loc:
            assert ("body", *loc) in [tuple(e["loc"]) for e in body["errors"]], (case, body)

    listed = await client.get(products_url(supplier_id), headers=owner)
    assert listed.json()["items"] == []


async def test_a_staff_member_manages_products(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, _ = await supplier(client)
    staff = await new_actor(client)
    await add_member(session, supplier_id, staff.account_id, MemberRole.staff)

    created = await create_product(client, supplier_id, staff.headers, product_body("P1"))
    patched = await client.patch(
        f"{products_url(supplier_id)}/{created['id']}", json={"title": "T"}, headers=staff.headers
    )

    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "T"


async def test_api_keys_need_products_scopes(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    reader = bearer((await api_key(client, supplier_id, owner, ["products:read"]))["key"])
    writer = bearer((await api_key(client, supplier_id, owner, ["products:write"]))["key"])
    neither = bearer((await api_key(client, supplier_id, owner, ["orders:read"]))["key"])
    url = products_url(supplier_id)

    created = await client.post(url, json=product_body("P1"), headers=writer)
    assert created.status_code == 201, created.text
    product_url = f"{url}/{created.json()['id']}"

    assert (await client.get(url, headers=reader)).status_code == 200
    assert (await client.get(product_url, headers=reader)).status_code == 200
    write_calls = [
        client.post(url, json=product_body("P2"), headers=reader),
        client.post(f"{url}/bulk-upsert", json={"products": [product_body("P2")]}, headers=reader),
        client.patch(product_url, json={"title": "x"}, headers=reader),
        client.post(
            f"/v1/suppliers/{supplier_id}/stock",
            json={"items": [{"sku": "P1-A", "stock": 0}]},
            headers=reader,
        ),
    ]
    for call in write_calls:
        assert_problem(await call, 403, "insufficient_scope")
    for call in (client.get(url, headers=neither), client.get(product_url, headers=neither)):
        assert_problem(await call, 403, "insufficient_scope")

    patched = await client.patch(product_url, json={"title": "by key"}, headers=writer)
    assert patched.status_code == 200, patched.text
    stock = await client.post(
        f"/v1/suppliers/{supplier_id}/stock",
        json={"items": [{"sku": "P1-A", "stock": 3}]},
        headers=writer,
    )
    assert stock.status_code == 200, stock.text
    after = await client.get(product_url, headers=owner)
    assert after.json()["title"] == "by key"
    assert after.json()["variants"][0]["stock"] == 3


async def test_another_supplier_cannot_see_or_change_products(client: httpx.AsyncClient) -> None:
    """B's owner and B's API key get 404 on every product route of A, and A is untouched."""
    a_id, a_owner = await supplier(client)
    product = await create_product(client, a_id, a_owner, product_body("P1"))
    b_id, b_owner = await supplier(client)
    b_key = bearer(
        (await api_key(client, b_id, b_owner, ["products:read", "products:write"]))["key"]
    )
    a_url = products_url(a_id)
    a_product = f"{a_url}/{product['id']}"

    for headers in (b_owner, b_key):
        calls = [
            client.get(a_url, headers=headers),
            client.get(a_product, headers=headers),
            client.patch(a_product, json={"title": "hacked"}, headers=headers),
            client.post(a_url, json=product_body("X"), headers=headers),
            client.post(
                f"{a_url}/bulk-upsert",
                json={"products": [product_body("P1", title="hacked")]},
                headers=headers,
            ),
            client.post(
                f"/v1/suppliers/{a_id}/stock",
                json={"items": [{"sku": "P1-A", "stock": 0}]},
                headers=headers,
            ),
        ]
        for call in calls:
            assert_problem(await call, 404, "supplier_not_found")

        # Through B's own routes, A's product id is unknown.
        b_product = f"{products_url(b_id)}/{product['id']}"
        assert_problem(await client.get(b_product, headers=headers), 404, "product_not_found")
        patched = await client.patch(b_product, json={"title": "hacked"}, headers=headers)
        assert_problem(patched, 404, "product_not_found")
        listed = await client.get(products_url(b_id), headers=headers)
        assert listed.json()["items"] == []

    after = await client.get(a_product, headers=a_owner)
    assert after.json()["title"] == product["title"]
    assert after.json()["variants"] == product["variants"]
    assert [p["id"] for p in (await client.get(a_url, headers=a_owner)).json()["items"]] == [
        product["id"]
    ]


async def test_refs_and_skus_are_per_supplier(client: httpx.AsyncClient) -> None:
    """B upserting A's ref and SKU creates B's own product; A's variant is not touched."""
    a_id, a_owner = await supplier(client)
    a_product = await create_product(client, a_id, a_owner, product_body("P1"))
    b_id, b_owner = await supplier(client)

    response = await bulk(
        client,
        b_id,
        b_owner,
        [product_body("P1", variants=[variant_body("P1-A", price_minor=1, stock=0)])],
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 1, "updated": 0, "unchanged": 0, "failed": []}
    a_after = await client.get(f"{products_url(a_id)}/{a_product['id']}", headers=a_owner)
    assert a_after.json()["variants"][0]["price_minor"] == 1000
    assert a_after.json()["variants"][0]["stock"] == 10
    (b_product,) = (await client.get(products_url(b_id), headers=b_owner)).json()["items"]
    assert b_product["id"] != a_product["id"]
    assert b_product["variants"][0]["id"] != a_product["variants"][0]["id"]


async def test_product_routes_need_credentials(client: httpx.AsyncClient) -> None:
    supplier_id = uuid.uuid4()
    url = products_url(str(supplier_id))

    for call in (
        client.get(url),
        client.post(url, json=product_body("P1")),
        client.get(f"{url}/{uuid.uuid4()}"),
        client.patch(f"{url}/{uuid.uuid4()}", json={"title": "x"}),
        client.post(f"{url}/bulk-upsert", json={"products": [product_body("P1")]}),
        client.post(
            f"/v1/suppliers/{supplier_id}/stock", json={"items": [{"sku": "A", "stock": 1}]}
        ),
    ):
        assert_problem(await call, 401, "unauthenticated")
