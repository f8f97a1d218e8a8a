"""Fixtures for order tests that race for real: the app and a session on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import make_settings
from xiaopu.app import create_app
from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker


@dataclass
class Live:
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings


@pytest.fixture
async def live(fresh_db_url: str) -> AsyncIterator[Live]:
    """The app on its own database with a real pool: requests commit and race for real."""
    settings = make_settings(fresh_db_url, db_pool_size=20, db_max_overflow=20)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    app = create_app(settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Live(client, sessionmaker, settings)
    finally:
        await engine.dispose()
