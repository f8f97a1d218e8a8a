"""What every storefront page owes a browser: a strict CSP, nothing reflected unescaped, HTML
(not problem+json) for a missing page, the reader's language, and a light page."""

from __future__ import annotations

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.storefront.helpers import storefront_shop
from xiaopu.models import Shop

HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


async def test_pages_carry_a_strict_content_security_policy(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    for path in (f"/m/{shop['slug']}", f"/m/{shop['slug']}/p/{shop['products'][0]['id']}"):
        page = await client.get(path)
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        # No inline script or handler for the policy to have to allow.
        assert "<script>" not in page.text
        assert " onclick=" not in page.text


async def test_a_hostile_shop_name_and_search_are_escaped(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    await session.execute(update(Shop).where(Shop.slug == shop["slug"]).values(name=HOSTILE))
    await session.flush()
    page = await client.get(f"/m/{shop['slug']}", params={"q": HOSTILE})
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    product = await client.get(f"/m/{shop['slug']}/p/{shop['products'][0]['id']}")
    assert "<script>alert" not in product.text
    assert "&#34;&gt;&lt;script&gt;" in product.text


async def test_unknown_shops_and_products_get_an_html_404(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    for path in (
        "/m/no-such-shop",
        f"/m/{shop['slug']}/p/00000000-0000-0000-0000-000000000000",
        f"/m/{shop['slug']}/p/not-a-uuid",
        "/m/o/00000000-0000-0000-0000-000000000000",
        "/m/x/y/z",
    ):
        page = await client.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert "页面不存在" in page.text


async def test_english_when_the_browser_prefers_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    path = f"/m/{shop['slug']}/p/{shop['products'][0]['id']}"
    chinese = await client.get(path, headers={"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in chinese.text
    assert "立即购买" in chinese.text
    assert "¥140.80" in chinese.text
    english = await client.get(path, headers={"accept-language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert '<html lang="en">' in english.text
    assert "Buy now" in english.text
    assert "CN¥140.80" in english.text
    assert english.headers["vary"] == "Accept-Language"
    default = await client.get(path, headers={"accept-language": "fr-FR"})
    assert "立即购买" in default.text


async def test_pages_are_light(client: httpx.AsyncClient, session: AsyncSession) -> None:
    """Page weight without images (the HTML, its stylesheet and its script) within 60 KB."""
    shop = await storefront_shop(
        client, session, products=[{"title": f"商品 {i}"} for i in range(20)]
    )
    for path in (f"/m/{shop['slug']}", f"/m/{shop['slug']}/p/{shop['products'][0]['id']}"):
        page = await client.get(path)
        total = len(page.content)
        for asset in ("/m/_/app.css", "/m/_/cart.js"):
            answer = await client.get(asset)
            assert answer.status_code == 200
            total += len(answer.content)
        assert total <= 60 * 1024, (path, total)


async def test_assets_are_served_versioned(client: httpx.AsyncClient) -> None:
    css = await client.get("/m/_/app.css")
    assert css.headers["content-type"].startswith("text/css")
    page_url = (await client.get("/m/nope")).text
    assert "/m/_/app.css?v=" in page_url
    missing = await client.get("/m/_/../config.py")
    assert missing.status_code == 404
