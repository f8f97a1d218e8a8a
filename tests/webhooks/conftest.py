"""Fixtures for the webhook tests: an outbound HTTP client and an app that refuses http URLs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import make_settings
from tests.webhooks.receiver import Receiver, receiver
from xiaopu.app import create_app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The client deliveries go out through, configured as the worker's."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


@pytest.fixture
async def strict_client(
    main_db_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app as in production: webhook_allow_loopback=False, so only https URLs."""
    settings = make_settings(main_db_url, webhook_allow_loopback=False)
    app = create_app(settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(scope="module")
def _shared_receiver() -> Iterator[Receiver]:
    # One server per module: stopping one takes up to half a second.
    with receiver() as state:
        yield state


@pytest.fixture
def hook(_shared_receiver: Receiver) -> Receiver:
    """A real receiver on 127.0.0.1, with nothing received and nothing scripted."""
    _shared_receiver.requests.clear()
    _shared_receiver.script.clear()
    _shared_receiver.delay_seconds = 0.0
    return _shared_receiver
