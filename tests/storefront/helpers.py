"""Builders for storefront tests: a shop with products, the forms a browser would post."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import person, supplier
from xiaopu.models import Supplier, SupplierStatus

GOOD_ADDRESS = {
    "recipient": "王小明",
    "phone": "13800138000",
    "province": "云南省",
    "city": "昆明市",
    "district": "五华区",
    "line1": "翠湖南路 1 号",
    "postal_code": "650031",
    "note": "",
}


async def storefront_shop(
    client: httpx.AsyncClient,
    session: AsyncSession,
    *,
    products: list[dict[str, Any]] | None = None,
    shipping_fee_minor: int = 0,
) -> dict[str, Any]:
    """A keeper's shop carrying the given products (a default one if none) of an active
    supplier: {"slug", "keeper", "products": [{"id", "variants": [ids]}], "supplier_id",
    "owner" (the supplier owner's auth headers)}."""
    keeper = await person(client)
    supplier_id, owner = await supplier(client)
    await session.execute(
        update(Supplier)
        .where(Supplier.id == uuid.UUID(supplier_id))
        .values(status=SupplierStatus.active, shipping_fee_minor=shipping_fee_minor)
    )
    await session.commit()
    shop = await client.post("/v1/shops", headers=keeper)
    assert shop.status_code == 201, shop.text
    made = []
    for spec in products or [{}]:
        ref = uuid.uuid4().hex[:12]
        body = {
            "ref": ref,
            "title": spec.get("title", "云南普洱茶饼 357g"),
            "description": spec.get("description", "Aged raw pu-erh."),
            "category_id": "food.tea",
            "commission_bps": 1500,
            "markup_ceiling_bps": 2000,
            "status": "active",
            "image_urls": spec.get("image_urls", ["https://img.example.com/puer.jpg"]),
            "variants": [
                {"sku": f"{ref}-{i}", "currency": "CNY", **v}
                for i, v in enumerate(spec.get("variants", [{"price_minor": 12800, "stock": 5}]))
            ],
        }
        created = await client.post(
            f"/v1/suppliers/{supplier_id}/products", json=body, headers=owner
        )
        assert created.status_code == 201, created.text
        product = created.json()
        added = await client.post(
            "/v1/shops/mine/products",
            json={
                "product_id": product["id"],
                "markup_bps": spec.get("markup_bps", 1000),
                "blurb": spec.get("blurb"),
            },
            headers=keeper,
        )
        assert added.status_code == 201, added.text
        made.append({"id": product["id"], "variants": [v["id"] for v in product["variants"]]})
    return {
        "slug": shop.json()["slug"],
        "keeper": keeper,
        "products": made,
        "supplier_id": supplier_id,
        "owner": owner,
    }


def hidden(html: str, name: str) -> str:
    """The value of a hidden input in a page."""
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name} in the page"
    return match.group(1)


async def checkout_form(
    client: httpx.AsyncClient, slug: str, items: list[tuple[str, int]]
) -> tuple[httpx.Response, dict[str, Any]]:
    """The checkout page for these items, and the form fields it would post (address empty)."""
    params = [p for v, n in items for p in (("v", v), ("n", str(n)))]
    page = await client.get(f"/m/{slug}/checkout", params=params)
    fields: dict[str, Any] = {}
    if page.status_code == 200:
        fields = {
            "csrf": hidden(page.text, "csrf"),
            "key": hidden(page.text, "key"),
            "v": [v for v, _ in items],
            "n": [str(n) for _, n in items],
        }
    return page, fields
