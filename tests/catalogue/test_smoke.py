"""Smoke: a supplier lists a product, a shopkeeper finds it, adds it, and buyers see it."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_operator, person, signup, supplier


async def test_product_to_public_shop(client: httpx.AsyncClient, session: AsyncSession) -> None:
    supplier_id, owner = await supplier(client)
    operator = await signup(client)
    await make_operator(session, operator["account"]["id"])
    op_headers = {"Authorization": f"Bearer {operator['tokens']['access_token']}"}
    approved = await client.post(
        f"/v1/operator/suppliers/{supplier_id}/approve", headers=op_headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"

    product = {
        "ref": "PUER-357",
        "title": "云南普洱茶饼 Pu-erh tea cake 357g",
        "category_id": "food.tea",
        "commission_bps": 1500,
        "markup_ceiling_bps": 2000,
        "status": "active",
        "image_urls": ["https://img.example.com/puer.jpg"],
        "variants": [
            {"sku": "PUER-357-A", "price_minor": 12800, "currency": "CNY", "stock": 10},
            {
                "sku": "PUER-357-B",
                "price_minor": 9900,
                "currency": "CNY",
                "stock": 0,
                "commission_bps": 2000,
            },
        ],
    }
    created = await client.post(
        f"/v1/suppliers/{supplier_id}/products", json=product, headers=owner
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]

    keeper = await person(client)
    shop = await client.post("/v1/shops", headers=keeper)
    assert shop.status_code == 201, shop.text
    slug = shop.json()["slug"]

    found = await client.get("/v1/catalogue/products", params={"q": "普洱"}, headers=keeper)
    assert found.status_code == 200, found.text
    assert [p["id"] for p in found.json()["items"]] == [product_id]
    assert found.json()["items"][0]["max_commission_bps"] == 2000

    added = await client.post(
        "/v1/shops/mine/products",
        json={"product_id": product_id, "markup_bps": 1000, "blurb": "好喝"},
        headers=keeper,
    )
    assert added.status_code == 201, added.text

    public = await client.get(f"/v1/shops/{slug}/products")
    assert public.status_code == 200, public.text
    (item,) = public.json()["items"]
    assert [v["price_minor"] for v in item["variants"]] == [14080]

    again = await client.post(
        f"/v1/suppliers/{supplier_id}/products/bulk-upsert",
        json={"products": [product]},
        headers=owner,
    )
    assert again.status_code == 200, again.text
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 2, "failed": []}
