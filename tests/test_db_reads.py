"""Reads together: independent queries asked in one statement, and reads asked ahead."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import make_settings
from xiaopu.db import (
    Deferred,
    Read,
    create_engine,
    create_sessionmaker,
    defer,
    raw_connection,
    read_ahead,
    read_together,
    unit_of_work,
)


@pytest.fixture
async def real_engine(fresh_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(fresh_db_url))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE words (n int PRIMARY KEY, word text, tags jsonb)"))
        await conn.execute(
            text("INSERT INTO words VALUES (1, 'one', '{\"odd\": true}'), (2, 'two', '[]')")
        )
    yield engine
    await engine.dispose()


def words(above: int) -> Read[list[tuple[Any, ...]]]:
    return Read("SELECT n, word, tags FROM words WHERE n > $1 ORDER BY n", (above,), list)


def word(n: int) -> Read[str | None]:
    def make(rows: Sequence[Any]) -> str | None:
        return str(rows[0][0]) if rows else None

    return Read("SELECT word FROM words WHERE n = $1", (n,), make)


async def test_reads_are_asked_in_one_statement_each_with_its_own_parameters(
    real_engine: AsyncEngine, statements: list[str]
) -> None:
    async with create_sessionmaker(real_engine)() as session:
        statements.clear()
        many, one = await read_together(session, words(0), word(2))
    assert len(statements) == 1, statements
    # Rows arrive as tuples in the query's column order, JSON decoded as everywhere else.
    assert many == [(1, "one", {"odd": True}), (2, "two", [])]
    assert one == "two"


async def test_a_read_asked_ahead_goes_with_the_next_reads(
    real_engine: AsyncEngine, statements: list[str]
) -> None:
    seen: list[str | None] = []
    async with create_sessionmaker(real_engine)() as session:
        statements.clear()
        read_ahead(session, word(1), seen.append)
        assert statements == []  # not asked yet
        many, missing = await read_together(session, words(1), word(3))
    assert len(statements) == 1, statements
    assert seen == ["one"]
    assert (many, missing) == ([(2, "two", [])], None)


async def test_a_read_asked_ahead_goes_before_anything_else_and_may_stop_the_work(
    real_engine: AsyncEngine,
) -> None:
    class Found(Exception):
        pass

    def refuse(found: str | None) -> None:
        if found is not None:
            raise Found(found)

    sessions = create_sessionmaker(real_engine)

    async def writes() -> None:
        async with unit_of_work(sessions) as session:
            read_ahead(session, word(1), refuse)
            await defer(session, Deferred(("INSERT INTO words VALUES ($1, 'x')",), (7,)))

    # Before the deferred writes queued after it (nothing is written then) ...
    with pytest.raises(Found, match="one"):
        await writes()
    # ... before a raw statement, and before an ORM query.
    async with sessions() as session:
        read_ahead(session, word(1), refuse)
        with pytest.raises(Found):
            await raw_connection(session)
    async with sessions() as session:
        read_ahead(session, word(1), refuse)
        with pytest.raises(Found):
            await session.execute(text("SELECT 1"))
    # A read that finds nothing lets the work go on.
    async with unit_of_work(sessions) as session:
        read_ahead(session, word(9), refuse)
        await defer(session, Deferred(("INSERT INTO words VALUES ($1, 'nine')",), (9,)))
    async with sessions() as session:
        nine, seven = await read_together(session, word(9), word(7))
    assert (nine, seven) == ("nine", None)
