"""Shop and product pages served from kept bytes and cached data: the same page for everyone,
per language, and a change shows once the cache's few seconds have passed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.storefront.helpers import storefront_shop
from xiaopu.app import XiaopuApp, create_app
from xiaopu.config import Settings

TTL = 0.2


@pytest.fixture
async def app(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> XiaopuApp:
    app = create_app(settings, sessionmaker=sessionmaker)
    app.state.storefront_cache.ttl = TTL
    app.state.storefront_pages.ttl = TTL
    return app


@pytest.fixture
async def fast_client(app: XiaopuApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_a_product_page_is_answered_from_its_kept_bytes(
    fast_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(fast_client, session)
    path = f"/m/{shop['slug']}/p/{shop['products'][0]['id']}"
    first = await fast_client.get(path)
    assert "x-request-id" in first.headers  # rendered by the app
    again = await fast_client.get(path)
    assert "x-request-id" not in again.headers  # answered ahead of the framework
    assert again.content == first.content
    assert again.headers["content-security-policy"] == first.headers["content-security-policy"]
    english = await fast_client.get(path, headers={"accept-language": "en"})
    assert "Buy now" in english.text  # kept per language
    chinese = await fast_client.get(path)
    assert "立即购买" in chinese.text


async def test_a_price_change_shows_once_the_cache_lapses(
    fast_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(fast_client, session)
    path = f"/m/{shop['slug']}/p/{shop['products'][0]['id']}"
    assert "¥140.80" in (await fast_client.get(path)).text
    keeper = shop["keeper"]
    changed = await fast_client.patch(
        f"/v1/shops/mine/products/{shop['products'][0]['id']}",
        json={"markup_bps": 2000},
        headers=keeper,
    )
    assert changed.status_code == 200, changed.text
    assert "¥140.80" in (await fast_client.get(path)).text  # within the cache's time
    await asyncio.sleep(TTL * 1.5)
    assert "¥153.60" in (await fast_client.get(path)).text


async def test_pages_with_a_query_or_a_cookie_are_not_kept(
    fast_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(fast_client, session)
    searched = f"/m/{shop['slug']}?q=普洱"
    await fast_client.get(searched)
    assert "x-request-id" in (await fast_client.get(searched)).headers
    checkout = f"/m/{shop['slug']}/checkout"
    await fast_client.get(checkout)
    assert "x-request-id" in (await fast_client.get(checkout)).headers
