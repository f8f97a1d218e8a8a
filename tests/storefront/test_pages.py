"""The storefront's shop and product pages, over the real app."""

from __future__ import annotations

import html
import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.storefront.helpers import storefront_shop


async def test_shop_page_lists_products_with_the_shops_price(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(
        client,
        session,
        products=[
            {"title": "滇红金芽", "variants": [{"price_minor": 8800, "stock": 3}]},
            {"title": "鲜花饼", "variants": [{"price_minor": 4990, "stock": 0}]},
        ],
    )
    page = await client.get(f"/m/{shop['slug']}")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "滇红金芽" in page.text
    assert "¥96.80" in page.text  # 8800 + 10% markup
    assert "已售罄" in page.text  # the flower cakes, sold out but listed


async def test_product_page(client: httpx.AsyncClient, session: AsyncSession) -> None:
    shop = await storefront_shop(
        client,
        session,
        shipping_fee_minor=1000,
        products=[
            {
                "title": "普洱",
                "blurb": "掌柜自己天天喝",
                "variants": [
                    {"price_minor": 12800, "stock": 5, "options": {"year": "2019"}},
                    {"price_minor": 26800, "stock": 0, "options": {"year": "2015"}},
                ],
            }
        ],
    )
    product = shop["products"][0]
    page = await client.get(f"/m/{shop['slug']}/p/{product['id']}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "掌柜自己天天喝" in text
    assert "¥140.80" in text
    assert "¥294.80" in text
    assert "¥10.00" in text  # shipping
    assert "签收后 7 天内可退货" in text
    assert '<meta property="og:title" content="普洱">' in text
    assert '<meta property="product:price:amount" content="140.80">' in text


async def test_the_shop_page_shows_the_keepers_blurb_and_searches(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(
        client,
        session,
        products=[{"title": "滇红金芽"}, {"title": "普洱茶饼"}],
    )
    updated = await client.patch(
        "/v1/shops/mine", json={"blurb": "好茶\n自己喝过才上架"}, headers=shop["keeper"]
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["blurb"] == "好茶\n自己喝过才上架"
    page = await client.get(f"/m/{shop['slug']}")
    assert "<p>好茶</p><p>自己喝过才上架</p>" in page.text
    found = await client.get(f"/m/{shop['slug']}", params={"q": "滇红"})
    assert "滇红金芽" in found.text
    assert "普洱茶饼" not in found.text
    nothing = await client.get(f"/m/{shop['slug']}", params={"q": "咖啡"})
    assert "没有找到相关商品" in nothing.text


async def test_more_products_load_by_cursor(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(
        client, session, products=[{"title": f"茶 {i:02d}"} for i in range(25)]
    )
    first = await client.get(f"/m/{shop['slug']}")
    titles = re.findall(r'<span class="title">(茶 \d\d)</span>', first.text)
    assert len(titles) == 20
    more = re.search(r'href="(/m/[^"]+cursor=[^"]+)" data-load-more', first.text)
    assert more
    second = await client.get(html.unescape(more.group(1)))
    rest = re.findall(r'<span class="title">(茶 \d\d)</span>', second.text)
    assert len(rest) == 5
    assert not set(titles) & set(rest)
    assert "data-load-more" not in second.text
