"""Bulk upsert by product ref and SKU: idempotent, reports per item, at most 1,000 variants."""

from __future__ import annotations

import copy
import time
from typing import Any

import httpx

from tests.catalogue.helpers import assert_problem, bulk, product_body, variant_body
from tests.factories import supplier
from xiaopu.catalogue.schemas import MAX_VARIANTS_PER_PRODUCT


def catalogue(products: int, variants_each: int) -> list[dict[str, Any]]:
    return [
        product_body(
            f"P{p:04d}",
            title=f"云南普洱茶 batch {p}",
            variants=[
                variant_body(
                    f"P{p:04d}-{v}", price_minor=1000 + p * 10 + v, stock=100, options={"n": str(v)}
                )
                for v in range(variants_each)
            ],
        )
        for p in range(products)
    ]


async def all_products(
    client: httpx.AsyncClient, supplier_id: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = await client.get(
            f"/v1/suppliers/{supplier_id}/products", params=params, headers=headers
        )
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


async def test_a_thousand_variants_create_then_repeat_unchanged_then_one_update(
    client: httpx.AsyncClient,
) -> None:
    supplier_id, owner = await supplier(client)
    payload = catalogue(products=100, variants_each=10)

    started = time.perf_counter()
    first = await bulk(client, supplier_id, owner, payload)
    elapsed = time.perf_counter() - started
    print(f"\nbulk upsert of 1,000 new variants (100 products x 10): {elapsed:.3f} s")

    assert first.status_code == 200, first.text
    assert first.json() == {"created": 1000, "updated": 0, "unchanged": 0, "failed": []}

    started = time.perf_counter()
    second = await bulk(client, supplier_id, owner, payload)
    print(f"bulk upsert of 1,000 unchanged variants: {time.perf_counter() - started:.3f} s")
    assert second.status_code == 200, second.text
    assert second.json() == {"created": 0, "updated": 0, "unchanged": 1000, "failed": []}

    changed = copy.deepcopy(payload)
    changed[42]["variants"][7]["price_minor"] = 99_999
    third = await bulk(client, supplier_id, owner, changed)
    assert third.status_code == 200, third.text
    assert third.json() == {"created": 0, "updated": 1, "unchanged": 999, "failed": []}

    stored = await all_products(client, supplier_id, owner)
    assert len(stored) == 100
    assert sum(len(p["variants"]) for p in stored) == 1000
    (p42,) = [p for p in stored if p["ref"] == "P0042"]
    assert {v["sku"]: v["price_minor"] for v in p42["variants"]}["P0042-7"] == 99_999


async def test_a_thousand_single_variant_products(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    payload = catalogue(products=1000, variants_each=1)

    started = time.perf_counter()
    response = await bulk(client, supplier_id, owner, payload)
    print(f"\nbulk upsert of 1,000 new products x 1 variant: {time.perf_counter() - started:.3f} s")

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 1000, "updated": 0, "unchanged": 0, "failed": []}


async def test_a_bad_item_is_reported_by_index_and_the_good_ones_apply(
    client: httpx.AsyncClient,
) -> None:
    supplier_id, owner = await supplier(client)
    payload = catalogue(products=4, variants_each=2)
    payload[2]["variants"][1]["price_minor"] = -100

    response = await bulk(client, supplier_id, owner, payload)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["updated"], result["unchanged"]) == (6, 0, 0)
    (failure,) = result["failed"]
    assert failure["index"] == 2
    assert failure["ref"] == "P0002"
    assert any("price_minor" in e for e in failure["errors"]), failure
    refs = {p["ref"] for p in await all_products(client, supplier_id, owner)}
    assert refs == {"P0000", "P0001", "P0003"}


async def test_several_kinds_of_bad_items_are_reported_in_order(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    existing = product_body("OLD", variants=[variant_body("OLD-1")])
    assert (await bulk(client, supplier_id, owner, [existing])).status_code == 200
    payload = [
        product_body("A"),
        product_body("B", category_id="food.caviar"),  # unknown category
        product_body("C", variants=[variant_body("C-1", currency="XYZ")]),
        product_body("D", variants=[variant_body("OLD-1")]),  # SKU of another product
        {"title": "no ref", "variants": [variant_body("E-1")]},
        product_body("A", variants=[variant_body("A-2")]),  # ref repeated
        product_body("F", commission_bps=10_001),
        product_body("G"),
    ]

    response = await bulk(client, supplier_id, owner, payload)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["created"] == 2
    assert [(f["index"], f["ref"]) for f in result["failed"]] == [
        (1, "B"),
        (2, "C"),
        (3, "D"),
        (4, None),
        (5, "A"),
        (6, "F"),
    ]
    errors = {f["index"]: " ".join(f["errors"]) for f in result["failed"]}
    assert "food.caviar" in errors[1]
    assert "currency" in errors[2]
    assert "OLD-1" in errors[3]
    assert "ref" in errors[4]
    assert "repeated" in errors[5]
    assert "commission_bps" in errors[6]
    refs = {p["ref"] for p in await all_products(client, supplier_id, owner)}
    assert refs == {"OLD", "A", "G"}


async def test_updating_product_fields_keeps_variants_unchanged(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    payload = catalogue(products=1, variants_each=3)
    await bulk(client, supplier_id, owner, payload)
    payload[0]["title"] = "新的标题"
    payload[0]["variants"].append(variant_body("P0000-new"))

    response = await bulk(client, supplier_id, owner, payload)

    assert response.json() == {"created": 1, "updated": 0, "unchanged": 3, "failed": []}
    (product,) = await all_products(client, supplier_id, owner)
    assert product["title"] == "新的标题"
    assert len(product["variants"]) == 4


async def test_a_duplicate_sku_across_products_rejects_the_whole_call(
    client: httpx.AsyncClient,
) -> None:
    supplier_id, owner = await supplier(client)
    payload = [
        product_body("A", variants=[variant_body("SAME")]),
        product_body("B", variants=[variant_body("OTHER"), variant_body("SAME")]),
    ]

    response = await bulk(client, supplier_id, owner, payload)

    body = assert_problem(response, 422, "duplicate_sku")
    assert "SAME" in body["detail"]
    assert await all_products(client, supplier_id, owner) == []


async def test_a_thousand_and_one_variants_are_refused(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    spread = await bulk(client, supplier_id, owner, catalogue(products=1001, variants_each=1))
    one_product = await bulk(client, supplier_id, owner, catalogue(products=1, variants_each=1001))

    assert_problem(spread, 422, "too_many_variants")
    assert_problem(one_product, 422, "too_many_variants")
    assert await all_products(client, supplier_id, owner) == []


async def test_the_envelope_is_validated(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    url = f"/v1/suppliers/{supplier_id}/products/bulk-upsert"

    bodies: list[dict[str, Any]] = [
        {},
        {"products": []},
        {"products": ["not an object"]},
        {"items": []},
    ]
    for body in bodies:
        response = await client.post(url, json=body, headers=owner)
        assert_problem(response, 422, "validation_error")


async def test_a_non_list_variants_value_is_reported_not_a_crash(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    payload = [product_body("GOOD"), product_body("BAD") | {"variants": 5}]

    response = await bulk(client, supplier_id, owner, payload)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["created"] == 1
    assert [(f["index"], f["ref"]) for f in result["failed"]] == [(1, "BAD")]


async def test_a_product_grows_to_at_most_its_variant_limit_across_calls(
    client: httpx.AsyncClient,
) -> None:
    # A catalogue page shows each product with all its variants: the limit bounds the page.
    supplier_id, owner = await supplier(client)
    (base,) = catalogue(products=1, variants_each=MAX_VARIANTS_PER_PRODUCT - 1)
    first = await bulk(client, supplier_id, owner, [base])
    assert first.json()["created"] == MAX_VARIANTS_PER_PRODUCT - 1

    def adding(*skus: str) -> dict[str, Any]:
        more = copy.deepcopy(base)
        more["variants"] = [variant_body(sku, price_minor=1000, stock=1) for sku in skus]
        return more

    # Leaving variants out keeps them: two new ones would make one too many.
    over = await bulk(client, supplier_id, owner, [adding("X-1", "X-2")])
    assert over.status_code == 200, over.text
    (failed,) = over.json()["failed"]
    assert failed["ref"] == base["ref"]
    assert any(
        e.startswith(f"too many variants: a product has at most {MAX_VARIANTS_PER_PRODUCT}")
        for e in failed["errors"]
    )
    fits = await bulk(client, supplier_id, owner, [adding("X-1")])
    assert fits.json()["created"] == 1
    # Updating the variants it has is always allowed at the limit.
    again = await bulk(client, supplier_id, owner, [adding("X-1", base["variants"][0]["sku"])])
    assert again.json()["failed"] == []
    (stored,) = await all_products(client, supplier_id, owner)
    assert len(stored["variants"]) == MAX_VARIANTS_PER_PRODUCT

    # One product created with more than the limit is refused as it is.
    (big,) = catalogue(products=1, variants_each=MAX_VARIANTS_PER_PRODUCT + 1)
    big["ref"] = "BIG"
    for v in big["variants"]:
        v["sku"] = "BIG-" + v["sku"]
    created = await client.post(f"/v1/suppliers/{supplier_id}/products", json=big, headers=owner)
    assert_problem(created, 422, "validation_error")
