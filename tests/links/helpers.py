"""Builders for share-link tests: an active supplier's product in a fresh shop."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import person, supplier
from xiaopu.models import Supplier, SupplierStatus

PRODUCT = {
    "title": "云南普洱茶饼 357g",
    "category_id": "food.tea",
    "commission_bps": 1500,
    "markup_ceiling_bps": 2000,
    "status": "active",
    "image_urls": ["https://img.example.com/puer.jpg"],
}


async def shop_with_product(
    client: httpx.AsyncClient,
    session: AsyncSession,
    keeper: dict[str, str],
    *,
    price_minor: int = 12800,
    currency: str = "CNY",
) -> tuple[str, str]:
    """(shop slug, product id) of the keeper's new shop carrying one product at 10% markup."""
    supplier_id, owner = await supplier(client)
    await session.execute(
        update(Supplier)
        .where(Supplier.id == uuid.UUID(supplier_id))
        .values(status=SupplierStatus.active)
    )
    await session.commit()
    ref = uuid.uuid4().hex[:12]
    product = {
        **PRODUCT,
        "ref": ref,
        "variants": [
            {"sku": f"{ref}-A", "price_minor": price_minor, "currency": currency, "stock": 5}
        ],
    }
    created = await client.post(
        f"/v1/suppliers/{supplier_id}/products", json=product, headers=owner
    )
    assert created.status_code == 201, created.text
    shop = await client.post("/v1/shops", headers=keeper)
    assert shop.status_code == 201, shop.text
    added = await client.post(
        "/v1/shops/mine/products",
        json={"product_id": created.json()["id"], "markup_bps": 1000},
        headers=keeper,
    )
    assert added.status_code == 201, added.text
    return shop.json()["slug"], created.json()["id"]


async def product_link_code(client: httpx.AsyncClient, session: AsyncSession) -> str:
    """The code of a new share link for a product in a new shopkeeper's new shop."""
    keeper = await person(client)
    _, product_id = await shop_with_product(client, session, keeper)
    response = await client.post(
        "/v1/shops/mine/links", json={"product_id": product_id}, headers=keeper
    )
    assert response.status_code == 201, response.text
    return str(response.json()["code"])
