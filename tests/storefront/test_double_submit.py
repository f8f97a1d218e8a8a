"""Two posts of one checkout page racing for real (the same Idempotency-Key in both): one order,
and both answers lead to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import make_settings
from tests.storefront.helpers import GOOD_ADDRESS, checkout_form, storefront_shop
from xiaopu.app import create_app
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.models import Order

pytestmark = pytest.mark.concurrent
Live = tuple[httpx.AsyncClient, async_sessionmaker[AsyncSession]]


@pytest.fixture
async def live(fresh_db_url: str) -> AsyncIterator[Live]:
    settings = make_settings(fresh_db_url, db_pool_size=10, db_max_overflow=10)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    app = create_app(settings, sessionmaker=sessionmaker)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            yield client, sessionmaker
    finally:
        await engine.dispose()


async def test_a_double_tap_places_one_order(live: Live) -> None:
    client, sessionmaker = live
    async with sessionmaker() as session:
        shop = await storefront_shop(client, session)
    slug, variant = shop["slug"], shop["products"][0]["variants"][0]
    _, fields = await checkout_form(client, slug, [(variant, 1)])
    form = {**fields, **GOOD_ADDRESS}
    answers = await asyncio.gather(
        *(client.post(f"/m/{slug}/checkout", data=form) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [303] * 4, [a.text[:300] for a in answers]
    assert len({a.headers["location"] for a in answers}) == 1
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
