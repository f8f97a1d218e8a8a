"""Input the schemas let through but PostgreSQL refuses is a clear 4xx, never a 500."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import bearer, person, signup
from tests.links.helpers import shop_with_product


async def test_a_nul_character_is_422_not_500(client: httpx.AsyncClient) -> None:
    headers = await person(client)
    response = await client.post("/v1/suppliers", json={"name": "Farm\u0000"}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_long_display_name_still_gets_a_shop(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/signup",
        json={
            "email": "long-name@example.com",
            "password": "correct horse battery",
            "display_name": "林" * 64,
        },
    )
    assert response.status_code == 201, response.text
    shop = await client.post("/v1/shops", headers=bearer(response.json()["tokens"]["access_token"]))
    assert shop.status_code == 201, shop.text
    assert len(shop.json()["name"]) <= 64


async def test_a_broken_referer_does_not_break_the_redirect(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper = bearer((await signup(client))["tokens"]["access_token"])
    _, product_id = await shop_with_product(client, session, keeper)
    code = (
        await client.post("/v1/shops/mine/links", json={"product_id": product_id}, headers=keeper)
    ).json()["code"]
    response = await client.get(
        f"/s/{code}", headers={"user-agent": "Mozilla/5.0 (iPhone)", "referer": "http://[::1"}
    )
    assert response.status_code == 302
