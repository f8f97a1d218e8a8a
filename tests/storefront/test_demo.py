"""The demo share link that `make run` prints opens the storefront's product page."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.seed import demo_share_link, seed_demo


async def test_the_demo_share_link_opens_the_product_page(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await seed_demo(session)
    await session.commit()
    link = urlsplit(demo_share_link("http://127.0.0.1:8000"))
    redirect = await client.get(link.path, headers={"user-agent": "Mozilla/5.0 (iPhone)"})
    assert redirect.status_code == 302
    target = urlsplit(redirect.headers["location"])
    assert target.path == "/m/xiaolin"
    landing = await client.get(f"{target.path}?{target.query}")
    assert landing.status_code == 303
    product = await client.get(landing.headers["location"])
    assert product.status_code == 200
    assert "云南普洱茶饼" in product.text
    assert "我家每天早上一壶" in product.text
    assert "/m/_/demo/puer.svg" in product.text
    picture = await client.get("/m/_/demo/puer.svg")
    assert picture.headers["content-type"] == "image/svg+xml"
    shop = await client.get("/m/xiaolin")
    assert "滇红金芽红茶" in shop.text
    assert "已售罄" not in shop.text  # the flower cakes have a variant in stock
