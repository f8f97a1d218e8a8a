"""Deferred writes: sent as one statement before anything else reaches the database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.conftest import make_settings
from xiaopu.db import (
    RERUNS,
    Deferred,
    NeedsSession,
    create_engine,
    create_sessionmaker,
    defer,
    raw_connection,
    read_connection,
    run_unit_of_work,
    send_deferred,
    unit_of_work,
)
from xiaopu.errors import ConcurrentChange
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


async def test_a_unit_of_work_of_deferred_writes_commits_as_one_statement(
    real_engine: AsyncEngine, statements: list[str]
) -> None:
    """No BEGIN and no COMMIT: the statement is atomic by itself. A query nobody continues
    from is not even asked."""
    async with unit_of_work(create_sessionmaker(real_engine)) as session:
        await defer(session, Deferred((NOTE,), (20, "before")))
        await defer(session, Deferred((), (), "SELECT t FROM tags"))
        await defer(session, Deferred((NOTE,), (21, "after")))
        statements.clear()
    assert len(statements) == 1, statements
    assert statements[0].startswith("WITH ")
    assert "tags" not in statements[0]
    assert await _notes(real_engine) == [(20, "before"), (21, "after")]


async def test_a_query_that_finds_nothing_to_continue_with_stays_in_the_one_statement(
    real_engine: AsyncEngine, statements: list[str]
) -> None:
    called: list[Sequence[Any]] = []

    async def then(rows: Sequence[Any]) -> None:
        called.append(rows)

    async with unit_of_work(create_sessionmaker(real_engine)) as session:
        await defer(session, Deferred((NOTE,), (22, "x"), "SELECT t FROM tags WHERE false", then))
        statements.clear()
    assert len(statements) == 1, statements
    assert called == []  # a continuation is only handed rows
    assert await _notes(real_engine) == [(22, "x")]


async def test_a_query_that_finds_rows_sends_the_writes_again_in_a_transaction(
    real_engine: AsyncEngine, statements: list[str]
) -> None:
    seen: list[Sequence[Any]] = []

    async def then(rows: Sequence[Any]) -> None:
        seen.append([r[0] for r in rows])

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
    # Alone, the statement refuses itself (its continuation writes, and needs a transaction
    # with the writes); then all four writes and the query in one round trip, and the commit.
    assert len(statements) == 4, statements
    assert statements[0].startswith("WITH ")
    assert statements[1].startswith("BEGIN")
    assert statements[2].startswith("WITH ")
    assert statements[3].startswith("COMMIT")
    assert seen == [["old"]]
    assert await _notes(real_engine) == [(1, "one"), (2, "two"), (3, "three")]


TAKE = "UPDATE tags SET t = t || '!' WHERE t = $1 RETURNING t"


async def test_a_write_that_finds_the_database_moved_keeps_nothing(
    real_engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(real_engine)

    async def alone() -> None:
        async with unit_of_work(sessions) as session:
            await defer(session, Deferred((NOTE,), (23, "alone")))
            await defer(session, Deferred((TAKE,), ("gone",), expect=1))

    async def in_a_transaction() -> None:
        # A raw write began one: the unit of work rolls it back with the rest.
        async with unit_of_work(sessions) as session:
            raw = await raw_connection(session)
            await raw.execute(NOTE, 24, "raw")
            await defer(session, Deferred((NOTE,), (25, "in a transaction")))
            await defer(session, Deferred((TAKE,), ("gone",), expect=1))

    with pytest.raises(ConcurrentChange):
        await alone()
    with pytest.raises(ConcurrentChange):
        await in_a_transaction()
    assert await _notes(real_engine) == []
    async with real_engine.connect() as conn:
        assert list(await conn.scalars(text("SELECT t FROM tags"))) == ["old"]


async def test_a_unit_of_work_is_run_again_when_the_database_moved(
    real_engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(real_engine)
    wanted = ["gone", "old"]  # the first run looks for a row that is not there
    runs: list[str] = []

    async def work(session: AsyncSession) -> str:
        tag = wanted[len(runs)]
        runs.append(tag)
        await defer(session, Deferred((NOTE,), (26, tag)))
        await defer(session, Deferred((TAKE,), (tag,), expect=1))
        return tag

    assert await run_unit_of_work(sessions, work) == "old"
    assert runs == ["gone", "old"]
    assert await _notes(real_engine) == [(26, "old")]

    async def never(session: AsyncSession) -> None:
        runs.append("never")
        await defer(session, Deferred((TAKE,), ("gone",), expect=1))

    with pytest.raises(ConcurrentChange):
        await run_unit_of_work(sessions, never, attempts=3)
    assert runs.count("never") == 3


async def test_a_statement_that_loses_a_deadlock_alone_is_run_again(
    real_engine: AsyncEngine,
) -> None:
    """A deadlock or serialization failure of the one statement that commits the work kept
    nothing: the work runs again, as on any concurrent change."""
    async with real_engine.begin() as conn:
        # The conflict the database would report, on the first call only.
        await conn.execute(text("CREATE TABLE lost (n int)"))
        await conn.execute(
            text(
                "CREATE FUNCTION lose_once() RETURNS boolean AS "
                "'BEGIN IF NOT EXISTS (SELECT FROM lost) THEN "
                "RAISE EXCEPTION ''lost'' USING ERRCODE = ''40P01''; END IF; RETURN true; END' "
                "LANGUAGE plpgsql"
            )
        )
    sessions = create_sessionmaker(real_engine)
    runs: list[int] = []

    async def work(session: AsyncSession) -> None:
        runs.append(len(runs))
        if len(runs) == 2:
            async with real_engine.begin() as conn:
                await conn.execute(text("INSERT INTO lost VALUES (1)"))
        await defer(session, Deferred((NOTE,), (27, "won")))
        await defer(session, Deferred(("UPDATE tags SET t = t WHERE lose_once()",), ()))

    await run_unit_of_work(sessions, work)
    assert runs == [0, 1]
    assert await _notes(real_engine) == [(27, "won")]


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
        await defer(
            session, Deferred((CATEGORY,), ("test.q",), "SELECT t FROM tags", child("test.p"))
        )
        await defer(session, Deferred((CATEGORY,), ("test.r",)))
        await defer(session, Deferred((), (), "SELECT 1 UNION ALL SELECT 2", child("test.r")))
    # Each continuation ran once every write was in: test.r's kid refers to the last write.
    assert answers == [1, 2]
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


async def test_a_light_unit_of_work_sends_its_reads_and_one_statement_and_nothing_else(
    real_engine: AsyncEngine, statements: list[str]
) -> None:
    async def work(session: AsyncSession) -> int:
        raw = await read_connection(session)
        count = int(await raw.fetchval("SELECT count(*) FROM tags"))
        await defer(session, Deferred((NOTE,), (30, "light")))
        await defer(session, Deferred((TAKE,), ("old",), expect=1))
        return count

    assert await run_unit_of_work(create_sessionmaker(real_engine), work) == 1
    # The read and the write: no BEGIN, no COMMIT, no ping or reset of the pooled connection.
    assert len(statements) == 2, statements
    assert await _notes(real_engine) == [(30, "light")]


async def test_work_a_light_unit_of_work_cannot_do_is_run_again_in_a_full_one(
    real_engine: AsyncEngine,
) -> None:
    runs: list[int] = []

    async def work(session: AsyncSession) -> None:
        runs.append(1)
        await defer(session, Deferred((NOTE,), (31, "once")))
        # An ORM query would take a connection of SQLAlchemy's own, outside the one statement;
        # in the full unit of work the waiting write goes ahead of it.
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar() == 1
        await defer(session, Deferred((NOTE,), (32, "twice")))

    await run_unit_of_work(create_sessionmaker(real_engine), work)
    assert len(runs) == 2
    assert await _notes(real_engine) == [(31, "once"), (32, "twice")]


async def test_reruns_are_counted_and_a_full_unit_of_work_is_never_rerun_for_a_session(
    real_engine: AsyncEngine,
) -> None:
    runs: list[bool] = []

    async def work(session: AsyncSession) -> None:
        runs.append(isinstance(session, AsyncSession))
        raise NeedsSession()  # as if even a full session were not enough

    before = RERUNS.labels("needs_session")._value.get()
    with pytest.raises(NeedsSession):
        await run_unit_of_work(create_sessionmaker(real_engine), work)
    assert runs == [False, True]  # the light stand-in, then one real session, and no more
    assert RERUNS.labels("needs_session")._value.get() == before + 1


async def test_a_light_connection_left_in_a_transaction_is_not_handed_out_again(
    real_engine: AsyncEngine,
) -> None:
    held: list[Any] = []

    async def work(session: AsyncSession) -> None:
        raw = await read_connection(session)
        await raw.execute("BEGIN")  # nothing of ours does this; a mistake must not spread
        held.append(raw)

    await run_unit_of_work(create_sessionmaker(real_engine), work)
    (raw,) = held
    assert raw.is_closed()

    async def read(session: AsyncSession) -> bool:
        raw = await read_connection(session)
        return bool(raw.is_in_transaction())

    assert await run_unit_of_work(create_sessionmaker(real_engine), read) is False


@pytest.mark.parametrize(
    ("made", "refusal"),
    [
        (lambda: Deferred(("SELECT 1",), ()), "plain INSERT, UPDATE or DELETE"),
        (lambda: Deferred((f"WITH x AS (SELECT 1) {NOTE}",), (1, "a")), "plain INSERT"),
        (lambda: Deferred((NOTE,), (1,)), r"names \$2 but has 1 params"),
        (lambda: Deferred((NOTE,), (1, "a"), "SELECT $3"), r"names \$3 but has 2 params"),
        (lambda: Deferred(("DELETE FROM notes WHERE word = $$x$$",), ()), "carries no \\$"),
        (lambda: Deferred((NOTE,), (1, "a"), expect=1), "needs RETURNING"),
        (lambda: Deferred((TAKE,), ("old",), expect=-1), "needs RETURNING"),
        (lambda: Deferred((NOTE,), (1, "a"), "SELECT * FROM {written}", _ignore), "RETURNs"),
        (lambda: Deferred((), (), "SELECT * FROM {written}", _ignore), "RETURNs"),
        (lambda: Deferred((NOTE,), (1, "a"), "DELETE FROM tags", _ignore), "query is a SELECT"),
        (lambda: Deferred((NOTE,), (1, "a"), then=_ignore), "give it a `query`"),
    ],
)
def test_a_deferred_write_the_one_statement_cannot_carry_is_refused_when_made(
    made: Any, refusal: str
) -> None:
    """The shape rules of docs/checkout-unit-of-work.md, at the line that breaks them."""
    with pytest.raises(ValueError, match=refusal):
        made()


async def test_the_shapes_the_rules_allow_are_made_and_sent(real_engine: AsyncEngine) -> None:
    seen: list[Sequence[Any]] = []

    async def then(rows: Sequence[Any]) -> None:
        seen.append(list(rows))

    async with unit_of_work(create_sessionmaker(real_engine)) as session:
        # Statements sharing their parameters, in lower case, and a query naming the last one.
        lower = "insert into notes (n, word) values ($3, $4)"
        await defer(session, Deferred((NOTE, lower), (40, "a", 41, "b"), "SELECT $4::text", then))
        # A conditional UPDATE counted by `expect`, with a query reading what it wrote.
        await defer(session, Deferred((TAKE,), ("old",), "SELECT t FROM {written}", then, expect=1))
    assert seen == [[("b",)], [("old!",)]]
    assert await _notes(real_engine) == [(40, "a"), (41, "b")]


async def test_a_read_once_writes_wait_is_a_run_again_in_a_full_unit_of_work(
    real_engine: AsyncEngine,
) -> None:
    """The light unit of work sends its writes last, as its one statement: a read after them
    cannot go on its connection, and the work runs again, counted, on a full session."""
    runs: list[int] = []

    async def work(session: AsyncSession) -> int:
        runs.append(1)
        await defer(session, Deferred((NOTE,), (33, "read after")))
        raw = await read_connection(session)  # in a full session, the write is sent first
        return int(await raw.fetchval("SELECT count(*) FROM notes"))

    before = RERUNS.labels("needs_session")._value.get()
    assert await run_unit_of_work(create_sessionmaker(real_engine), work) == 1
    assert len(runs) == 2
    assert RERUNS.labels("needs_session")._value.get() == before + 1
