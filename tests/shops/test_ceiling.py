"""A supplier lowering its markup ceiling caps the markup shops picked before."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import person
from tests.links.helpers import shop_with_product
from xiaopu.models import Product


async def test_a_lowered_ceiling_caps_the_public_price(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper = await person(client)
    slug, product_id = await shop_with_product(client, session, keeper)  # 12800 at 10% markup
    before = (await client.get(f"/v1/shops/{slug}/products")).json()["items"][0]
    assert before["variants"][0]["price_minor"] == 14080

    product = await session.get(Product, uuid.UUID(product_id))
    assert product is not None
    product.markup_ceiling_bps = 500
    await session.commit()

    after = (await client.get(f"/v1/shops/{slug}/products")).json()["items"][0]
    assert after["variants"][0]["price_minor"] == 13440  # 12800 + 5%
