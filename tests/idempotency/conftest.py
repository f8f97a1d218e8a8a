"""Fixtures: the test-only app on the per-test transaction, and on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import make_settings
from tests.idempotency.helpers import Api, api_client, build_app
from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker


@pytest.fixture
async def api(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Api]:
    """The app with the test routes, inside the test's rolled-back transaction."""
    async with api_client(build_app(settings, sessionmaker)) as api:
        yield api


@pytest.fixture
async def concurrent_api(fresh_db_url: str) -> AsyncIterator[Api]:
    """The app with the test routes on a fresh database, a real pool and real commits."""
    settings = make_settings(fresh_db_url, db_pool_size=20, db_max_overflow=40)
    engine = create_engine(settings)
    try:
        async with api_client(build_app(settings, create_sessionmaker(engine))) as api:
            yield api
    finally:
        await engine.dispose()
