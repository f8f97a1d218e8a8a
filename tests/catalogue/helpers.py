"""Helpers for the supply-and-shops tests: people, approved suppliers, products and shops.

Sign-ups hash a password with argon2 (~0.1 s each), so tests reuse one person in several roles
where the roles do not matter: the same account may be an operator, a supplier's owner and a
shopkeeper at once.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import account_id_of, assert_problem, assert_validation_error
from tests.factories import bearer, make_operator, signup, supplier

__all__ = [
    "Actor",
    "account_id_of",
    "active_supplier",
    "add_to_shop",
    "approve",
    "assert_problem",
    "assert_validation_error",
    "browse",
    "browse_ids",
    "bulk",
    "create_product",
    "new_actor",
    "open_shop",
    "operator",
    "product_body",
    "public_ids",
    "variant_body",
]

Headers = dict[str, str]


class Actor:
    """A signed-up person: auth headers plus the account's id and email."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.headers: Headers = bearer(body["tokens"]["access_token"])
        self.account_id: str = str(body["account"]["id"])
        self.email: str = str(body["account"]["email"])


async def new_actor(client: httpx.AsyncClient) -> Actor:
    return Actor(await signup(client))


async def operator(client: httpx.AsyncClient, session: AsyncSession) -> Actor:
    """A new person who is also an operator."""
    actor = await new_actor(client)
    await make_operator(session, actor.account_id)
    return actor


async def approve(client: httpx.AsyncClient, supplier_id: str, op: Headers) -> None:
    response = await client.post(f"/v1/operator/suppliers/{supplier_id}/approve", headers=op)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"


async def active_supplier(client: httpx.AsyncClient, owner: Headers, op: Headers) -> str:
    """A supplier owned by `owner`, approved by the operator `op`; returns its id."""
    supplier_id, _ = await supplier(client, owner)
    await approve(client, supplier_id, op)
    return supplier_id


def variant_body(sku: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"sku": sku, "price_minor": 1000, "currency": "CNY", "stock": 10}
    body.update(overrides)
    return body


def product_body(
    ref: str, *, variants: list[dict[str, Any]] | None = None, **overrides: Any
) -> dict[str, Any]:
    """An active product with one variant (SKU `{ref}-A`) unless told otherwise."""
    body: dict[str, Any] = {
        "ref": ref,
        "title": f"Product {ref}",
        "category_id": "food.tea",
        "commission_bps": 1000,
        "markup_ceiling_bps": 2000,
        "status": "active",
        "variants": variants if variants is not None else [variant_body(f"{ref}-A")],
    }
    body.update(overrides)
    return body


async def create_product(
    client: httpx.AsyncClient, supplier_id: str, headers: Headers, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/suppliers/{supplier_id}/products", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def bulk(
    client: httpx.AsyncClient,
    supplier_id: str,
    headers: Headers,
    products: list[dict[str, Any]],
) -> httpx.Response:
    return await client.post(
        f"/v1/suppliers/{supplier_id}/products/bulk-upsert",
        json={"products": products},
        headers=headers,
    )


async def open_shop(client: httpx.AsyncClient, headers: Headers, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/shops", json=body or None, headers=headers)
    assert response.status_code == 201, response.text
    shop: dict[str, Any] = response.json()
    return shop


async def add_to_shop(
    client: httpx.AsyncClient, headers: Headers, product_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        "/v1/shops/mine/products", json={"product_id": product_id, **body}, headers=headers
    )


async def browse(client: httpx.AsyncClient, headers: Headers, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/catalogue/products", params=params, headers=headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def browse_ids(client: httpx.AsyncClient, headers: Headers, **params: Any) -> list[str]:
    return [p["id"] for p in (await browse(client, headers, **params))["items"]]


async def public_ids(client: httpx.AsyncClient, slug: str) -> list[str]:
    response = await client.get(f"/v1/shops/{slug}/products")
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["items"]]
