"""The storefront's shop and product pages, over the real app."""

from __future__ import annotations

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
