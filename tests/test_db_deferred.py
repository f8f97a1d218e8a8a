"""Deferred writes: sent as one statement before anything else reaches the database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import make_settings
from xiaopu.db import (
    Deferred,
    create_engine,
    create_sessionmaker,
    defer,
    raw_connection,
    send_deferred,
    unit_of_work,
)
from xiaopu.models import Category

NOTE = "INSERT INTO notes (n, word) VALUES ($1, $2)"


@pytest.fixture
async def real_engine(fresh_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(fresh_db_url))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (n int PRIMARY KEY, word text)"))
        await conn.execute(text("CREATE TABLE tags (t text PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO tags VALUES ('old')"))
    yield engine
    await engine.dispose()


async def _notes(engine: AsyncEngine) -> list[tuple[int, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT n, word FROM notes ORDER BY n"))
        return [(r.n, r.word) for r in rows]


async def _ignore(rows: Sequence[Any]) -> None:
    """A continuation that does nothing: its presence is what a test is about."""


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the driver is asked to run, in order."""
    sent: list[str] = []
    for name in ("execute", "fetch"):
        real = getattr(asyncpg.Connection, name)

        def spy(self: Any, query: str, *args: Any, _real: Any = real, **kw: Any) -> Any:
            sent.append(query)
            return _real(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, name, spy)
    return sent


async def test_writes_deferred_after_a_query_go_with_it(
    real_engine: AsyncEngine, statements: list[str]
) -> None:
    """As checkout's idempotency record, deferred after its outbox event's query."""
    async with unit_of_work(create_sessionmaker(real_engine)) as session:
        await defer(session, Deferred((NOTE,), (20, "before")))
        await defer(session, Deferred((), (), "SELECT t FROM tags"))
        await defer(session, Deferred((NOTE,), (21, "after")))
        statements.clear()
    assert len(statements) == 2  # the writes and the query, then COMMIT
    assert await _notes(real_engine) == [(20, "before"), (21, "after")]


async def test_writes_wait_for_the_commit_and_go_as_one_statement(
    real_engine: AsyncEngine, statements: list[str]
) -> None:
    seen: list[Sequence[Any]] = []

    async def then(rows: Sequence[Any]) -> None:
        seen.append([r["t"] for r in rows])

    async with unit_of_work(create_sessionmaker(real_engine)) as session:
        await defer(session, Deferred((NOTE,), (1, "one")))
        # Statements of one Deferred share its parameters.
        second = "INSERT INTO notes (n, word) VALUES ($3, $4)"
        await defer(session, Deferred((NOTE, second), (2, "two", 3, "three")))
        # The query sees the database as it was before the writes of its statement.
        await defer(
            session,
            Deferred(("INSERT INTO tags VALUES ($1)",), ("new",), "SELECT t FROM tags", then),
        )
        assert await _notes(real_engine) == []  # nothing sent yet
        statements.clear()
    # All four writes and the query in one round trip, then the commit.
    assert len(statements) == 2
    assert statements[0].startswith("WITH ")
    assert statements[1].startswith("COMMIT")
    assert seen == [["old"]]
    assert await _notes(real_engine) == [(1, "one"), (2, "two"), (3, "three")]


async def test_anything_else_on_the_session_sends_them_first(real_engine: AsyncEngine) -> None:
    async with create_sessionmaker(real_engine)() as session:
        await defer(session, Deferred((NOTE,), (4, "four")))
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar() == 1
        await defer(session, Deferred((NOTE,), (5, "five")))
        raw = await raw_connection(session)
        assert await raw.fetchval("SELECT count(*) FROM notes") == 2
        await defer(session, Deferred((NOTE,), (6, "six")))
        await session.commit()  # a bare commit, not through unit_of_work, sends them too
    assert [n for n, _ in await _notes(real_engine)] == [4, 5, 6]


async def test_a_rollback_drops_them(real_engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(real_engine)

    async def fails() -> None:
        async with unit_of_work(sessions) as session:
            await defer(session, Deferred((NOTE,), (7, "seven")))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await fails()
    async with sessions() as session:
        await defer(session, Deferred((NOTE,), (8, "eight")))
        await session.rollback()
        # The next transaction of the same session starts with none waiting.
        await send_deferred(session)
        await session.commit()
    assert await _notes(real_engine) == []


async def test_a_savepoint_neither_loses_nor_keeps_the_wrong_ones(
    real_engine: AsyncEngine,
) -> None:
    async with unit_of_work(create_sessionmaker(real_engine)) as session:
        await defer(session, Deferred((NOTE,), (9, "before")))
        nested = await session.begin_nested()  # the waiting write goes before the savepoint
        await defer(session, Deferred((NOTE,), (10, "inside")))  # sent at once, inside it
        await nested.rollback()
    assert await _notes(real_engine) == [(9, "before")]


async def test_a_failing_write_fails_the_unit_of_work(real_engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(real_engine)
    with pytest.raises(asyncpg.UniqueViolationError):
        async with unit_of_work(sessions) as session:
            await defer(session, Deferred((NOTE, NOTE), (11, "twice")))
    assert await _notes(real_engine) == []


async def test_an_orm_flush_never_runs_a_continuation_inside_itself(
    real_engine: AsyncEngine,
) -> None:
    async with create_sessionmaker(real_engine)() as session:
        await defer(session, Deferred((NOTE,), (12, "x"), "SELECT 1", _ignore))
        session.add(Category(id="test.deferred", name_zh="测试", name_en="Test"))
        with pytest.raises(RuntimeError, match="send_deferred first"):
            await session.flush()
        await session.rollback()


CATEGORY = "INSERT INTO categories (id, name_zh, name_en) VALUES ($1, '测试', 'Test')"


async def _categories(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.scalars(
            text("SELECT id FROM categories WHERE id LIKE 'test.%' ORDER BY id")
        )
        return list(rows)


async def test_orm_rows_added_after_a_deferred_write_go_after_it(real_engine: AsyncEngine) -> None:
    async with unit_of_work(create_sessionmaker(real_engine)) as session:
        await defer(session, Deferred((CATEGORY,), ("test.a",)))
        # Rows that refer to it: flushed explicitly, inside a savepoint, and at the commit.
        session.add(Category(id="test.a.1", parent_id="test.a", name_zh="一", name_en="One"))
        await session.flush()
        await defer(session, Deferred((CATEGORY,), ("test.b",)))
        session.add(Category(id="test.b.1", parent_id="test.b", name_zh="二", name_en="Two"))
        async with session.begin_nested():
            session.add(Category(id="test.b.2", parent_id="test.b", name_zh="三", name_en="3"))
        await defer(session, Deferred((CATEGORY,), ("test.c",)))
        session.add(Category(id="test.c.1", parent_id="test.c", name_zh="四", name_en="Four"))
    assert await _categories(real_engine) == [
        "test.a",
        "test.a.1",
        "test.b",
        "test.b.1",
        "test.b.2",
        "test.c",
        "test.c.1",
    ]


async def test_several_queries_keep_the_writes_order_and_answer_after_all(
    real_engine: AsyncEngine,
) -> None:
    answers: list[int] = []

    def child(parent: str) -> Any:
        async def then(rows: Sequence[Any]) -> None:
            answers.append(len(rows))
            raw = await raw_connection(session)
            kid = (
                "INSERT INTO categories (id, parent_id, name_zh, name_en) VALUES ($1, $2, 'x', 'x')"
            )
            await raw.execute(kid, f"{parent}.kid", parent)

        return then

    async with unit_of_work(create_sessionmaker(real_engine)) as session:
        await defer(session, Deferred((CATEGORY,), ("test.p",)))
        query = "SELECT id FROM categories WHERE id LIKE 'test.%'"
        await defer(session, Deferred((CATEGORY,), ("test.q",), query, child("test.p")))
        await defer(session, Deferred((CATEGORY,), ("test.r",)))
        await defer(session, Deferred((), (), query, child("test.r")))
    # Each query saw the database before its own statement: none, then test.p and test.q.
    assert answers == [0, 2]
    assert await _categories(real_engine) == [
        "test.p",
        "test.p.kid",
        "test.q",
        "test.r",
        "test.r.kid",
    ]


async def test_a_savepoint_never_opens_with_a_continuation_waiting(
    real_engine: AsyncEngine,
) -> None:
    async with create_sessionmaker(real_engine)() as session:
        await defer(session, Deferred((NOTE,), (13, "x"), "SELECT 1", _ignore))
        with pytest.raises(RuntimeError, match="send_deferred first"):
            await session.begin_nested()
        await session.rollback()
