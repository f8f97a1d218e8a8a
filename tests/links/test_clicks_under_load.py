"""Clicks under load all reach the database after a graceful stop; a database outage costs
analytics, never redirects or unbounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import make_settings
from tests.links.helpers import product_link_code
from xiaopu.app import create_app
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.models import Click, LinkDailyStats

BROWSER = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36"
SENT = 3000


async def _hammer(client: httpx.AsyncClient, code: str, count: int) -> list[int]:
    async def one() -> int:
        # A distinct visitor each time, so every request is a counted click.
        cookie = f"xp_vid={secrets.token_hex(12)}"
        response = await client.get(f"/s/{code}", headers={"user-agent": BROWSER, "cookie": cookie})
        return response.status_code

    statuses: list[int] = []
    for start in range(0, count, 100):
        statuses += await asyncio.gather(*(one() for _ in range(min(100, count - start))))
    return statuses


@contextlib.asynccontextmanager
async def _linked_app(
    url: str, **overrides: object
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    """The app on its own engine (clicks commit for real), a client, and a product link's code."""
    settings = make_settings(url, **overrides)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    app = create_app(settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            async with sessionmaker() as session:
                code = await product_link_code(client, session)
            yield app, client, code
    finally:
        await engine.dispose()


async def _stored_and_counted(app: Any) -> tuple[Any, Any]:
    async with app.state.sessionmaker() as session:
        stored = await session.scalar(select(func.count()).select_from(Click))
        counted = await session.scalar(select(func.sum(LinkDailyStats.clicks)))
    return stored, counted


@pytest.mark.concurrent
async def test_every_click_sent_is_stored_after_a_graceful_stop(fresh_db_url: str) -> None:
    async with _linked_app(fresh_db_url) as (app, client, code):
        async with app.router.lifespan_context(app):
            statuses = await _hammer(client, code, SENT)
        recorder = app.state.clicks
        stored, counted = await _stored_and_counted(app)
    assert statuses == [302] * SENT
    assert (recorder.recorded, recorder.written, recorder.dropped) == (SENT, SENT, 0)
    assert stored == SENT
    assert counted == SENT


@pytest.mark.concurrent
async def test_database_down_redirects_still_work_and_memory_stays_bounded(
    fresh_db_url: str,
) -> None:
    buffer_max = 500
    dead = create_engine(make_settings(fresh_db_url), url="postgresql://postgres@127.0.0.1:1/none")
    try:
        async with _linked_app(fresh_db_url, click_buffer_max=buffer_max) as (app, client, code):
            # Warm the link cache, then take the database away from the click writer.
            assert (await _hammer(client, code, 1)) == [302]
            recorder = app.state.clicks
            recorder._sessionmaker = create_sessionmaker(dead)
            statuses = await _hammer(client, code, 2000)
            assert await recorder.flush() == 0  # the write fails quietly and keeps what fits
    finally:
        await dead.dispose()
    assert statuses == [302] * 2000
    assert recorder.buffered == buffer_max
    assert recorder.dropped == 2001 - buffer_max


async def test_clicks_stored_already_do_not_block_later_flushes(fresh_db_url: str) -> None:
    """A write whose commit went through but whose answer was lost puts its clicks back: the
    next flush stores the new ones, skips those already stored and counts each click once."""
    async with _linked_app(fresh_db_url) as (app, client, code):
        recorder = app.state.clicks
        assert await _hammer(client, code, 30) == [302] * 30
        first = list(recorder._buffer)
        assert await recorder.flush() == 30
        assert await _hammer(client, code, 20) == [302] * 20
        recorder._buffer[:0] = first  # as flush() puts back a batch it thinks failed
        assert await recorder.flush() == 50
        assert await _hammer(client, code, 5) == [302] * 5
        assert await recorder.flush() == 5  # flushing goes on as usual
        stored, counted = await _stored_and_counted(app)
    assert stored == 55
    assert counted == 55
