"""Stock pushes: absolute levels by SKU, unknown SKUs reported, one stock_low event per crossing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import (
    assert_problem,
    assert_validation_error,
    create_product,
    product_body,
    variant_body,
)
from tests.factories import supplier
from xiaopu.models import Event


async def push(
    client: httpx.AsyncClient, supplier_id: str, headers: dict[str, str], levels: dict[str, int]
) -> httpx.Response:
    items = [{"sku": sku, "stock": stock} for sku, stock in levels.items()]
    return await client.post(
        f"/v1/suppliers/{supplier_id}/stock", json={"items": items}, headers=headers
    )


async def stock_of(
    client: httpx.AsyncClient, supplier_id: str, headers: dict[str, str], product_id: str
) -> dict[str, int]:
    response = await client.get(
        f"/v1/suppliers/{supplier_id}/products/{product_id}", headers=headers
    )
    assert response.status_code == 200, response.text
    return {v["sku"]: v["stock"] for v in response.json()["variants"]}


async def stock_low_events(session: AsyncSession, supplier_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(Event)
        .where(Event.type == "product.stock_low", Event.owner_id == uuid.UUID(supplier_id))
        .order_by(Event.id)
    )
    return [e.data for e in rows]


async def two_variant_product(
    client: httpx.AsyncClient, supplier_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    return await create_product(
        client,
        supplier_id,
        headers,
        product_body(
            "TEA",
            variants=[
                variant_body("TEA-S", stock=50, low_stock_threshold=10),
                variant_body("TEA-L", stock=50),
            ],
        ),
    )


async def test_levels_are_absolute_and_unknown_skus_are_reported(
    client: httpx.AsyncClient,
) -> None:
    supplier_id, owner = await supplier(client)
    product = await two_variant_product(client, supplier_id, owner)

    first = await push(client, supplier_id, owner, {"TEA-S": 20, "NOPE": 5, "TEA-L": 0})
    second = await push(client, supplier_id, owner, {"TEA-S": 20, "TEA-L": 7})

    assert first.status_code == 200, first.text
    assert first.json() == {"updated": 2, "unknown_skus": ["NOPE"]}
    # Pushing 20 again sets 20 (not 40); only TEA-L changed.
    assert second.json() == {"updated": 1, "unknown_skus": []}
    assert await stock_of(client, supplier_id, owner, product["id"]) == {"TEA-S": 20, "TEA-L": 7}


async def test_crossing_below_the_threshold_emits_one_stock_low_event(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    product = await two_variant_product(client, supplier_id, owner)

    await push(client, supplier_id, owner, {"TEA-S": 10})  # at the threshold: not below
    assert await stock_low_events(session, supplier_id) == []

    await push(client, supplier_id, owner, {"TEA-S": 9, "TEA-L": 0})  # TEA-L has no threshold
    await push(client, supplier_id, owner, {"TEA-S": 3})  # still low: no second event
    await push(client, supplier_id, owner, {"TEA-S": 3})

    events = await stock_low_events(session, supplier_id)
    assert len(events) == 1
    (event,) = events
    assert event["sku"] == "TEA-S"
    assert event["stock"] == 9
    assert event["threshold"] == 10
    assert event["product_id"] == product["id"]
    by_sku = {v["sku"]: v["id"] for v in product["variants"]}
    assert event["variant_id"] == by_sku["TEA-S"]


async def test_restocking_and_falling_again_emits_again(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    await two_variant_product(client, supplier_id, owner)

    for level in (5, 40, 2):
        response = await push(client, supplier_id, owner, {"TEA-S": level})
        assert response.status_code == 200, response.text

    assert [e["stock"] for e in await stock_low_events(session, supplier_id)] == [5, 2]


async def test_another_suppliers_skus_count_as_unknown(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    a_id, a_owner = await supplier(client)
    product = await two_variant_product(client, a_id, a_owner)
    b_id, b_owner = await supplier(client)

    response = await push(client, b_id, b_owner, {"TEA-S": 0, "TEA-L": 0})

    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 0, "unknown_skus": ["TEA-S", "TEA-L"]}
    assert await stock_of(client, a_id, a_owner, product["id"]) == {"TEA-S": 50, "TEA-L": 50}
    assert await stock_low_events(session, a_id) == []
    assert await stock_low_events(session, b_id) == []


async def test_bad_pushes_are_422(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    product = await two_variant_product(client, supplier_id, owner)
    url = f"/v1/suppliers/{supplier_id}/stock"

    for body, loc in (
        ({"items": [{"sku": "TEA-S", "stock": -1}]}, ("items", 0, "stock")),
        ({"items": []}, ("items",)),
        ({"items": [{"sku": "TEA-S", "stock": 1, "price_minor": 5}]}, ("items", 0, "price_minor")),
        ({"items": [{"sku": f"S{i}", "stock": 1} for i in range(1001)]}, ("items",)),
    ):
        assert_validation_error(await client.post(url, json=body, headers=owner), "body", *loc)
    twice = {"items": [{"sku": "TEA-S", "stock": 1}, {"sku": "TEA-S", "stock": 2}]}
    assert_problem(await client.post(url, json=twice, headers=owner), 422, "validation_error")

    assert await stock_of(client, supplier_id, owner, product["id"]) == {"TEA-S": 50, "TEA-L": 50}
