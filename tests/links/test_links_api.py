"""Share link management: products must be in the shop, kits, QR codes, and tenancy."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import person
from tests.links.helpers import shop_with_product


async def test_share_kit_and_qr_codes(client: httpx.AsyncClient, session: AsyncSession) -> None:
    keeper = await person(client)
    _, product_id = await shop_with_product(client, session, keeper)
    link = (
        await client.post("/v1/shops/mine/links", json={"product_id": product_id}, headers=keeper)
    ).json()
    kit = await client.get(f"/v1/shops/mine/links/{link['id']}/kit", headers=keeper)
    assert kit.status_code == 200, kit.text
    body = kit.json()
    assert body["url"].endswith(f"/s/{link['code']}")
    assert "云南普洱茶饼" in body["message"]
    assert "¥140.80" in body["message"]
    assert body["url"] in body["message"]

    svg = await client.get(f"/v1/links/{link['code']}/qr.svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.lstrip().startswith("<?xml") or "<svg" in svg.text
    png = await client.get(f"/v1/links/{link['code']}/qr.png")
    assert png.status_code == 200
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert (await client.get("/v1/links/zzzzzzzzzz/qr.png")).json()["code"] == "link_not_found"


@pytest.mark.parametrize(
    ("price_minor", "currency", "shown"),
    [(1000, "JPY", "仅需 1100 JPY，"), (12345, "KWD", "仅需 13.580 KWD，")],
)
async def test_the_share_message_reads_the_price_in_the_currencys_minor_units(
    client: httpx.AsyncClient,
    session: AsyncSession,
    price_minor: int,
    currency: str,
    shown: str,
) -> None:
    keeper = await person(client)
    _, product_id = await shop_with_product(
        client, session, keeper, price_minor=price_minor, currency=currency
    )
    link = (
        await client.post("/v1/shops/mine/links", json={"product_id": product_id}, headers=keeper)
    ).json()
    kit = await client.get(f"/v1/shops/mine/links/{link['id']}/kit", headers=keeper)
    assert kit.status_code == 200, kit.text
    assert shown in kit.json()["message"]
    assert "¥" not in kit.json()["message"]


async def test_whole_shop_link_and_product_not_in_shop(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper = await person(client)
    await shop_with_product(client, session, keeper)
    shop_link = await client.post("/v1/shops/mine/links", json={"label": "朋友圈"}, headers=keeper)
    assert shop_link.status_code == 201
    assert shop_link.json()["product_id"] is None

    other = await person(client)
    _, foreign_product = await shop_with_product(client, session, other)
    refused = await client.post(
        "/v1/shops/mine/links", json={"product_id": foreign_product}, headers=keeper
    )
    assert refused.status_code == 404
    assert refused.json()["code"] == "not_in_shop"


async def test_another_shopkeeper_cannot_touch_my_links(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper = await person(client)
    await shop_with_product(client, session, keeper)
    link = (await client.post("/v1/shops/mine/links", json={}, headers=keeper)).json()
    other = await person(client)
    await shop_with_product(client, session, other)
    for path in ("kit", "stats"):
        response = await client.get(f"/v1/shops/mine/links/{link['id']}/{path}", headers=other)
        assert response.status_code == 404
        assert response.json()["code"] == "link_not_found"
    disable = await client.post(f"/v1/shops/mine/links/{link['id']}/disable", headers=other)
    assert disable.status_code == 404
    listed = await client.get("/v1/shops/mine/links", headers=other)
    assert listed.json()["items"] == []
    mine = await client.get("/v1/shops/mine/links", headers=keeper)
    assert [item["id"] for item in mine.json()["items"]] == [link["id"]]
