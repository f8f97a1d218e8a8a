"""raw_connection and read_connection: raw statements share the session's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import make_settings
from xiaopu.db import create_engine, create_sessionmaker, raw_connection, read_connection


@pytest.fixture
async def real_engine(fresh_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(fresh_db_url))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (n int PRIMARY KEY)"))
    yield engine
    await engine.dispose()


async def _notes(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.scalars(text("SELECT n FROM notes ORDER BY n"))).all())


async def test_raw_writes_commit_and_roll_back_with_the_session(real_engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(real_engine)
    async with sessions() as session:
        raw = await raw_connection(session)
        assert raw.is_in_transaction()
        await raw.execute("INSERT INTO notes VALUES (1)")
        await session.execute(text("INSERT INTO notes VALUES (2)"))  # the same transaction
        assert await raw_connection(session) is raw
        await session.rollback()
    assert await _notes(real_engine) == []

    async with sessions() as session:
        raw = await raw_connection(session)
        await raw.execute("INSERT INTO notes VALUES (3)")
        await session.commit()
        assert not raw.is_in_transaction()
        # A new transaction on the same session begins again, and is remembered anew.
        again = await raw_connection(session)
        assert again.is_in_transaction()
        await again.execute("INSERT INTO notes VALUES (4)")
        await session.commit()
    assert await _notes(real_engine) == [3, 4]


async def test_a_failed_raw_statement_rolls_back_everything(real_engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(real_engine)
    async with sessions() as session:
        raw = await raw_connection(session)
        await raw.execute("INSERT INTO notes VALUES (5)")
        with pytest.raises(Exception, match="duplicate key"):
            await raw.execute("INSERT INTO notes VALUES (5)")
        await session.rollback()
    assert await _notes(real_engine) == []


async def test_read_connection_reads_without_and_within_a_transaction(
    real_engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(real_engine)
    async with sessions() as session:
        raw = await read_connection(session)
        assert not raw.is_in_transaction()  # no BEGIN for a lone read
        assert await raw.fetchval("SELECT count(*) FROM notes") == 0
        # ORM work after it still runs in a transaction of its own, and commits.
        await session.execute(text("INSERT INTO notes VALUES (6)"))
        assert raw.is_in_transaction()
        # Within that transaction, the read sees its uncommitted row.
        assert await (await read_connection(session)).fetchval("SELECT count(*) FROM notes") == 1
        await session.commit()
    assert await _notes(real_engine) == [6]


async def _pooled_backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def _terminate(url: str, pid: int) -> None:
    killer = create_engine(make_settings(url))
    async with killer.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await killer.dispose()


async def test_an_idle_connection_failing_its_ping_is_replaced_unseen(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection cut without the client noticing (a proxy's timeout, say) looks open: only
    the ping of one idle past the threshold finds it out."""
    engine = create_engine(make_settings(fresh_db_url, db_ping_idle_seconds=0, db_pool_size=1))
    pings: list[int] = []
    real_fetchval = asyncpg.Connection.fetchval

    async def unanswered_ping(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        if query == "SELECT 1" and "timeout" in kw:  # the pool's ping, not a test's query
            pings.append(1)
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        return await real_fetchval(self, query, *args, **kw)

    try:
        first = await _pooled_backend_pid(engine)
        monkeypatch.setattr(asyncpg.Connection, "fetchval", unanswered_ping)
        # Idle past the threshold (0 s): pinged on checkout, failed, replaced by a new one
        # (which, just opened, is not pinged).
        assert await _pooled_backend_pid(engine) != first
        assert pings == [1]
    finally:
        await engine.dispose()


async def test_a_connection_the_server_closed_is_replaced_without_a_ping(
    fresh_db_url: str,
) -> None:
    """Within the idle window no ping is spent, yet a connection the server hung up on is not
    handed out again: not through SQLAlchemy, and not to the raw paths that bypass it."""
    engine = create_engine(make_settings(fresh_db_url, db_ping_idle_seconds=3600, db_pool_size=1))
    sessions = create_sessionmaker(engine)
    try:
        for connect in (raw_connection, read_connection):
            dead = await _pooled_backend_pid(engine)
            await _terminate(fresh_db_url, dead)
            await asyncio.sleep(0.2)  # the client sees the hang-up
            async with sessions() as session:
                raw = await connect(session)
                assert await raw.fetchval("SELECT pg_backend_pid()") != dead
    finally:
        await engine.dispose()
