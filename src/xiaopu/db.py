"""Engine and session factories, the one-unit-of-work-per-request session, and deferred writes.

Checkout runs as a light unit of work (reads together, then deferred writes sent as the one
statement that commits it). The rules a new read or deferred write on such a path must follow,
and which of them the code and tests hold, are in docs/checkout-unit-of-work.md.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, cast, overload

import asyncpg
import structlog
from fastapi import Depends, Request
from prometheus_client import Counter
from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_session,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_, greenlet_spawn

from xiaopu.config import Settings
from xiaopu.errors import AppError, ConcurrentChange

T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B")


def async_url(url: str) -> str:
    """Accept plain postgresql:// URLs too and point them at the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("database URL must be a postgresql:// URL")


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    target = url or settings.database_url
    if target is None:
        raise RuntimeError("no database URL configured")
    server_settings = {"application_name": "xiaopu", "timezone": "UTC"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    engine = create_async_engine(
        async_url(target),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        connect_args={"server_settings": server_settings},
    )
    _ping_when_idle(engine, settings.db_ping_idle_seconds)
    return engine


_IDLE_SINCE = "xiaopu.idle_since"
# A half-open connection (the network gone, not the server) would otherwise hang the ping.
PING_TIMEOUT_SECONDS = 2.0


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection before use only when it has sat idle a while.

    SQLAlchemy's pool_pre_ping checks every checkout, and on asyncpg that is BEGIN, a ping and
    ROLLBACK: three round trips on every request. A connection handed back milliseconds ago is
    alive; one idle for seconds may have been cut by a database restart or a proxy's timeout,
    so it is pinged, and a dead one is replaced before the request sees it. One the server
    closed is replaced at once, idle or not; one cut without the client noticing, within the
    window, fails its request and the pool drops it, as any disconnect mid-request would.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        # Raising makes the pool discard this connection and check out another.
        if driver.is_closed():
            # Closed while it sat in the pool (asyncpg saw the server hang up): free to tell,
            # and the raw paths, which bypass SQLAlchemy's own disconnect handling, must
            # never be handed such a connection.
            raise DisconnectionError("pooled connection was closed")
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # just opened (info is cleared on reconnect), or just used
        try:
            await_(driver.fetchval("SELECT 1", timeout=PING_TIMEOUT_SECONDS))
        except Exception as error:
            raise DisconnectionError("idle connection failed its ping") from error


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One request's session: committed when the work succeeds (or fails with an error that
    keeps its changes), rolled back otherwise."""
    async with sessionmaker() as session:
        try:
            yield session
        except AppError as exc:
            if exc.keeps_changes:
                await _commit(session)
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await _commit(session)


class NeedsSession(Exception):
    """A light unit of work met work it cannot do on its bare connection (an ORM query or
    flush, a transaction, a read once writes wait): run_unit_of_work runs the work again in a
    full one, and logs `reason`."""

    def __init__(self, reason: str = "work beyond reads and deferred writes") -> None:
        super().__init__(reason)
        self.reason = reason


_LIGHT = "xiaopu.light"


class _LightSession:
    """What a light unit of work's work holds as its session: the few things read_connection,
    read_together, defer and send_deferred ask of one, over a pooled connection of its own.
    Everything else a session does (ORM queries, adding objects, transactions) raises
    NeedsSession, and run_unit_of_work runs the work again with a real one."""

    new = dirty = deleted = ()

    def __init__(self, raw: Any) -> None:
        self.info: dict[str, Any] = {_LIGHT: raw}
        self.sync_session = self  # _pending and _queue keep their state in .info here too

    def get_transaction(self) -> None:
        return None

    def in_nested_transaction(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        raise NeedsSession(f"session.{name}: the ORM session")


@asynccontextmanager
async def light_unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """unit_of_work for work that only reads through read_connection or read_together and
    writes deferred writes, which it commits as one statement: the work gets a pooled
    connection of its own, without SQLAlchemy's session, connection, transaction and commit
    machinery around it (more CPU than the rest of a checkout's database work). Anything else
    raises NeedsSession. A sessionmaker bound to a connection (the tests' transaction) gets
    the full unit of work on it."""
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        async with unit_of_work(sessionmaker) as session:
            yield session
        return
    pooled = await engine.raw_connection()
    raw = pooled.driver_connection
    if raw is None:
        raise RuntimeError("a pooled connection without its driver connection")
    try:
        session = cast(AsyncSession, _LightSession(raw))
        try:
            yield session
        except AppError as exc:
            if exc.keeps_changes:
                await send_deferred(session, last=True)
            raise
        await send_deferred(session, last=True)
    finally:
        # Nothing here begins a transaction, and SQLAlchemy's reset on return would not end
        # one it did not begin: a connection found in one is not handed out again.
        if raw.is_in_transaction():
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)


RERUNS = Counter(
    "xiaopu_unit_of_work_reruns_total",
    "Units of work run again: on a full session (needs_session), or on what the database holds "
    "after a concurrent change (concurrent_change).",
    ["reason"],
)
log = structlog.get_logger(__name__)


async def run_unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = 3,
) -> T:
    """`work` in a light unit of work of its own (in a full one if it needs one), run again on
    a new one when it fails with ConcurrentChange (its writes found the database moved, and
    kept nothing): for a request that commits as one statement, as optimistic writers retry a
    serialization failure. Each run again is counted, and logged: a work that needs a full
    session every time costs twice what it should."""
    light = True
    attempt = 0
    while True:
        try:
            async with (light_unit_of_work if light else unit_of_work)(sessionmaker) as session:
                return await work(session)
        except NeedsSession as needs:
            if not light:
                raise  # only a light unit of work raises it: never loop on it
            light = False
            RERUNS.labels("needs_session").inc()
            log.info("unit_of_work_rerun", reason="needs_session", needs=needs.reason)
        except ConcurrentChange:
            attempt += 1
            RERUNS.labels("concurrent_change").inc()
            log.info("unit_of_work_rerun", reason="concurrent_change", attempt=attempt)
            if attempt == attempts:
                raise


async def _commit(session: AsyncSession) -> None:
    try:
        await send_deferred(session, last=True)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


# scope="function": the commit runs after the endpoint returns and before the response is sent,
# so a client never sees a success that was not committed.
DbSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


# For the rare request that must commit before it calls out and again after (claim, commit,
# call, record: opening a payment): it runs its own units of work, each with unit_of_work.
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction, for what
    SQLAlchemy does not do (COPY, pgqueuer's queries). SQLAlchemy begins lazily, so the
    transaction is begun here before raw work joins it. The hot paths (checkout, the outbox,
    idempotency) use it to skip SQLAlchemy's per-statement cost, so it is remembered for the
    rest of the session's transaction."""
    return await _driver(session, begin=True)


async def read_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, for one read-only statement that needs no
    transaction of its own: inside the session's transaction if one has begun, else on its
    own (autocommit), saving the BEGIN and ROLLBACK round trips."""
    return await _driver(session, begin=False)


async def _driver(
    session: AsyncSession, *, begin: bool, flush: bool = True, deferred: bool = True
) -> Any:
    if deferred and session.info.get(_AHEAD):
        await send_ahead(session)  # they were asked for first
    light = session.info.get(_LIGHT)
    if light is not None:
        # A light unit of work's connection takes only reads and its one final statement (its
        # stand-in session answers anything else, an ORM object added, with NeedsSession).
        if begin:
            raise NeedsSession("a transaction")
        if deferred and _pending(session.sync_session):
            # In a full session the waiting writes would go first; here they can only be the
            # last statement.
            raise NeedsSession("a read after deferred writes were queued")
        return light
    if flush and _unflushed(session):
        await session.flush()  # what raw SQL runs next may depend on it, as with autoflush
    if deferred and _pending(session.sync_session):
        await send_deferred(session)  # likewise
    sync = session.sync_session
    transaction = sync.get_transaction()
    remembered = session.info.get(_RAW)
    if (
        transaction is not None
        and remembered is not None
        and remembered[0] is transaction
        # Inside begin_nested(), SQLAlchemy emits the SAVEPOINT when a connection is asked for:
        # a raw statement must not slip in ahead of it.
        and not sync.in_nested_transaction()
    ):
        _, raw, connection, adapted = remembered
    else:
        connection = await session.connection()
        adapted = (await connection.get_raw_connection()).dbapi_connection
        raw = adapted.driver_connection if adapted is not None else None
        if raw is None:
            raise RuntimeError("a session's connection without its driver connection")
        # Remembered for the session's (root) transaction, begun or not: the writes sent as a
        # savepoint opens must reach its connection without asking for the savepoint's.
        session.info[_RAW] = (sync.get_transaction(), raw, connection, adapted)
    if begin and not raw.is_in_transaction():
        await _begin(connection, adapted)
    return raw


async def _begin(connection: AsyncConnection, adapted: Any) -> None:
    """Begin the session's transaction on the driver as SQLAlchemy's asyncpg adapter does
    before its first statement (same isolation, tracked so its commit and rollback end it),
    without the round trip of a statement run only for that."""
    start = getattr(adapted, "_start_transaction", None)
    mutex = getattr(adapted, "_execute_mutex", None)
    if start is not None and mutex is not None and hasattr(adapted, "_transaction"):
        try:
            async with mutex:
                if adapted._transaction is None:
                    await start()
            return
        except Exception:  # noqa: S110 - retried below, where its error is mapped
            pass
    # Should the adapter change shape, or the direct begin fail, a trivial statement through
    # SQLAlchemy begins instead; should that fail too, its error is the one the app maps (a
    # lost connection is a 503, and the pool drops it), not the adapter's bare one.
    await connection.execute(text("SELECT 1"))


_RAW = "xiaopu.raw_connection"


# Reads together ------------------------------------------------------------------------------
#
# A request's independent reads cost a round trip each, and checkout's (what it sells, the shop
# that sells it, the response stored under its Idempotency-Key) are three domains' queries. Each
# domain hands over its query as a Read, and the unit of work asks them in one statement, each
# query's rows as an array of records. A read can also be asked ahead: it waits for the
# session's next reads (or goes on its own before anything else reaches the database), and its
# result goes to a callback, which may refuse the work before it writes anything.


@dataclass(frozen=True, slots=True)
class Read(Generic[R]):
    """One read-only query (our own SQL, parameters numbered from $1) and what its rows make;
    they arrive as tuples, in its column order."""

    sql: str
    params: tuple[Any, ...]
    make: Callable[[Sequence[Any]], R]


_AHEAD = "xiaopu.read_ahead"


def read_ahead(session: AsyncSession, read: Read[R], then: Callable[[R], None]) -> None:
    """Ask `read` with the session's next reads (read_together), or on its own before anything
    else reaches the database (send_ahead), and hand its result to `then`."""
    session.info.setdefault(_AHEAD, []).append((read, then))


async def send_ahead(session: AsyncSession) -> None:
    """Ask the reads waiting to be asked ahead, now."""
    await read_together(session)


@overload
async def read_together(session: AsyncSession, /) -> tuple[()]: ...
@overload
async def read_together(session: AsyncSession, a: Read[A], b: Read[B], /) -> tuple[A, B]: ...
@overload
async def read_together(session: AsyncSession, /, *reads: Read[Any]) -> tuple[Any, ...]: ...
async def read_together(session: AsyncSession, /, *reads: Read[Any]) -> tuple[Any, ...]:
    """The reads' results, asked in one statement with any reads waiting to be asked ahead
    (their callbacks are called first, and may raise), through read_connection."""
    ahead: list[tuple[Read[Any], Callable[[Any], None]]] = session.info.pop(_AHEAD, [])
    if ahead and (_pending(session.sync_session) or _unflushed(session)):
        # Asked before the writes waiting now, they go ahead of them; these reads after.
        await _ask(session, ahead, (), after_writes=False)
        ahead = []
    return await _ask(session, ahead, reads, after_writes=True)


async def _ask(
    session: AsyncSession,
    ahead: list[tuple[Read[Any], Callable[[Any], None]]],
    reads: Sequence[Read[Any]],
    *,
    after_writes: bool,
) -> tuple[Any, ...]:
    asked = [read for read, _ in ahead] + list(reads)
    if not asked:
        return ()
    raw = await _driver(session, begin=False, flush=after_writes, deferred=after_writes)
    sql = _compose_reads(tuple((read.sql, len(read.params)) for read in asked))
    row = await raw.fetchrow(sql, *[p for read in asked for p in read.params])
    results = [read.make(row[i]) for i, read in enumerate(asked)]
    for (_, then), result in zip(ahead, results, strict=False):
        then(result)
    return tuple(results[len(ahead) :])


@functools.lru_cache(maxsize=256)
def _compose_reads(shapes: tuple[tuple[str, int], ...]) -> str:
    columns = []
    offset = 0
    for sql, count in shapes:
        columns.append(f"ARRAY(SELECT q FROM ({_shift(sql, offset)}) AS q)")  # noqa: S608 - ours
        offset += count
    return f"SELECT {', '.join(columns)}"


# Deferred writes ----------------------------------------------------------------------------
#
# Each statement is a round trip, and on the busiest paths the round trips cost more than the
# statements: checkout's writes (its stock, the order, its outbox event, its idempotency record)
# are four domains' writes that nothing reads before the commit. A repository can hand such a
# write to the unit of work instead of sending it; the writes wait, in order, and go as one
# statement (each a data-modifying CTE) just before anything else reaches the database on that
# session: a raw statement, an ORM query or flush, a savepoint, or the commit. A rollback drops
# them.
#
# A unit of work that has written nothing else by its commit (its reads went without a
# transaction, through read_connection) commits as that one statement, without BEGIN and
# COMMIT: a statement is atomic by itself. Its writes then hold no read's locks, so a write can
# state how many rows it must touch (a conditional UPDATE of stock, an INSERT ... ON CONFLICT DO
# NOTHING); the statement checks that itself and aborts, writes and all, and the unit of work
# fails with ConcurrentChange for its caller to run the work again on what the database holds
# now. A query whose rows a continuation acts on needs a transaction around the continuation's
# writes: when one finds rows, the statement aborts the same way and is sent again inside one.


@dataclass(frozen=True, slots=True)
class Deferred:
    """Writes (our own SQL, numbered parameters shared by them all), and optionally a query to
    run with them and a coroutine to hand its rows to.

    Waiting writes go out together as one statement, in which every part sees the database as
    it was before any of them: a write must not depend on another waiting write (inserts into
    different rows, in practice; foreign keys are checked at the statement's end, so a row may
    refer to one inserted beside it). Each part must be a plain INSERT, UPDATE or DELETE (no
    WITH of its own), and carry no `$` outside its parameters, which are renumbered; what of
    this the text shows is checked when a Deferred is made (docs/checkout-unit-of-work.md).

    `expect`: the last statement returns rows (RETURNING), exactly this many unless the
    database moved since the work read it; otherwise the unit of work fails with
    ConcurrentChange and keeps none of its writes. `query` may read those rows as `{written}`,
    and nothing else the waiting writes write. `then` gets the query's rows, as tuples in its
    column order, once every waiting write is in, and only if there are any."""

    statements: tuple[str, ...]
    params: tuple[Any, ...]
    query: str | None = None
    then: Callable[[Sequence[Any]], Awaitable[None]] | None = None
    expect: int | None = None

    def __post_init__(self) -> None:
        # The shape rules of docs/checkout-unit-of-work.md that a statement's text can show,
        # checked once per shape: a mistake fails where the write is made, in any test of it.
        highest = _check_shape(self.statements, self.query, self.then is not None, self.expect)
        if highest > len(self.params):
            raise ValueError(f"deferred SQL names ${highest} but has {len(self.params)} params")


_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\s", re.IGNORECASE)
_READ = re.compile(r"\s*SELECT\s", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_STRAY_DOLLAR = re.compile(r"\$(?!\d)")


@functools.lru_cache(maxsize=512)
def _check_shape(
    statements: tuple[str, ...], query: str | None, continued: bool, expect: int | None
) -> int:
    """Refuse a Deferred the one statement cannot carry (ValueError); the highest parameter
    number its SQL names."""
    for statement in statements:
        if not _WRITE.match(statement):
            raise ValueError(f"a deferred write is a plain INSERT, UPDATE or DELETE: {statement!r}")
    texts = [*statements, *([query] if query is not None else [])]
    for sql in texts:
        if _STRAY_DOLLAR.search(sql):
            raise ValueError(f"deferred SQL carries no $ but its parameters': {sql!r}")
    returns = bool(statements) and bool(_RETURNING.search(statements[-1]))
    if expect is not None and (expect < 0 or not returns):
        raise ValueError("`expect` counts the rows the last statement RETURNs: it needs RETURNING")
    if query is not None:
        if not _READ.match(query):
            raise ValueError(f"a deferred write's query is a SELECT: {query!r}")
        if WRITTEN in query and not returns:
            raise ValueError(f"{WRITTEN} is what the last statement RETURNs: it needs RETURNING")
    if continued and query is None:
        raise ValueError("a continuation (`then`) is handed a query's rows: give it a `query`")
    return max((int(n) for sql in texts for n in _PARAM.findall(sql)), default=0)


_DEFERRED = "xiaopu.deferred"
_PARAM = re.compile(r"\$(\d+)")
WRITTEN = "{written}"
# xiaopu_refuse()'s SQLSTATE (its migration) and the two reasons the statements give it.
_REFUSED = "XP409"
# deadlock_detected, serialization_failure: a statement that commits alone may simply be sent
# again.
_RUN_AGAIN = frozenset({"40P01", "40001"})
_MOVED, _NEEDS_TRANSACTION = "concurrent change", "needs a transaction"


async def defer(session: AsyncSession, work: Deferred) -> None:
    """Send `work` with the unit of work's next statement instead of now. Inside a savepoint,
    which may roll back on its own, it is sent at once."""
    await _driver(session, begin=False, deferred=False)  # what came before is flushed
    sync = session.sync_session
    _queue(sync).append(work)
    if sync.in_nested_transaction():
        await send_deferred(session)


async def send_deferred(session: AsyncSession, *, last: bool = False) -> None:
    """Send the writes waiting on this session in their order, as few statements as their
    queries allow, then hand each query's rows to its coroutine. `last`: the unit of work
    commits next; if nothing else has begun a transaction, they commit as one statement."""
    if session.info.get(_AHEAD):
        await send_ahead(session)  # they were asked for first, and may refuse the work
    sync = session.sync_session
    if last and (waiting := _pending(sync)) and not _unflushed(session):
        raw = await _driver(session, begin=False, flush=False, deferred=False)
        if not raw.is_in_transaction():
            sync.info.pop(_DEFERRED, None)
            if await _run(raw, waiting, alone=True) is not None:
                return
            if session.info.get(_LIGHT) is not None:
                raise NeedsSession(
                    "a continuation's query found rows: its writes need a transaction"
                )
            _queue(sync)[:0] = waiting  # a query found rows: sent again, in a transaction
    while waiting := _pending(sync):
        sync.info.pop(_DEFERRED, None)
        # Not flushed first: ORM changes still unflushed came after these writes (defer flushed
        # what came before), and may refer to them.
        raw = await _driver(session, begin=True, flush=False, deferred=False)
        # One query per statement, each with the writes waiting before it; the writes after
        # the last go with that last one (waiting writes never depend on one another).
        batches: list[list[Deferred]] = [[]]
        for work in waiting:
            batches[-1].append(work)
            if work.query is not None:
                batches.append([])
        trailing = batches.pop()
        if batches:
            batches[-1][-1:-1] = trailing  # ahead of the statement's query, which ends it
        elif trailing:
            batches.append(trailing)
        answered: list[tuple[Deferred, Sequence[Any]]] = []
        for batch in batches:
            rows = await _run(raw, batch)
            if rows:
                answered.append((batch[-1], rows))
        # Only once every waiting write is in: a coroutine may write rows that refer to them.
        for work, rows in answered:
            if work.then is not None:
                await work.then(rows)


def _unflushed(session: AsyncSession) -> bool:
    return bool(session.new or session.dirty or session.deleted)


async def _run(raw: Any, batch: list[Deferred], *, alone: bool = False) -> Sequence[Any] | None:
    """Send a batch as one statement: the rows of its final query (none if it has none); alone,
    all of the waiting writes, and None if a query found rows (nothing was written then)."""
    # A query nobody continues from is not asked.
    shapes = tuple(
        (w.statements, len(w.params), w.query if w.then else None, w.expect) for w in batch
    )
    sql, answers = _compose(shapes, alone)
    params = [p for w in batch for p in w.params]
    try:
        if not answers:
            await raw.execute(sql, *params)
            return []
        row = await raw.fetchrow(sql, *params)
    except asyncpg.PostgresError as error:
        state = getattr(error, "sqlstate", None)
        if alone and state in _RUN_AGAIN:
            # The one statement that commits the work lost a deadlock or a serialization
            # conflict to a concurrent writer (a campaign's shards and a give-back, say): it
            # kept nothing, so the work runs again like any concurrent change.
            raise ConcurrentChange() from None
        if state != _REFUSED:
            raise
        if getattr(error, "message", None) == _NEEDS_TRANSACTION:
            return None
        raise ConcurrentChange() from None
    rows: Sequence[Any] = row[-1] if shapes[-1][2] is not None and not alone else []
    return rows


@functools.lru_cache(maxsize=256)
def _compose(
    shapes: tuple[tuple[tuple[str, ...], int, str | None, int | None], ...], alone: bool
) -> tuple[str, bool]:
    """One statement from writes, their row counts to check, and queries (at most one unless
    alone, then only asked whether they find rows), parameters renumbered in turn; and whether
    it answers with a row."""
    parts: list[str] = []
    moved: list[str] = []
    queries: list[str] = []
    offset = 0
    for statements, count, query, expect in shapes:
        parts += [_shift(statement, offset) for statement in statements]
        written = f"deferred_{len(parts) - 1}"
        if expect is not None:
            # Our own names and an integer; nothing here comes from a request.
            moved.append(f"(SELECT count(*) FROM {written}) <> {int(expect)}")  # noqa: S608
        if query is not None:
            queries.append(_shift(query, offset).replace(WRITTEN, written))
        offset += count
    reasons = []
    if moved:
        reasons.append(f"WHEN {' OR '.join(moved)} THEN '{_MOVED}'")
    answer: list[str] = []
    searched: list[str] = []
    if alone and queries:
        searched = [f"query_{i} AS ({query})" for i, query in enumerate(queries)]
        found = " OR ".join(f"EXISTS (SELECT FROM query_{i})" for i in range(len(queries)))
        reasons.append(f"WHEN {found} THEN '{_NEEDS_TRANSACTION}'")
    elif queries:
        (query,) = queries
        answer.append(f"ARRAY(SELECT q FROM ({query}) AS q)")  # noqa: S608 - our own SQL
    if reasons:
        answer.insert(0, f"xiaopu_refuse(CASE {' '.join(reasons)} END)")
    # With nothing to check or answer, the last write is the statement itself.
    final = f"SELECT {', '.join(answer)}" if answer else parts.pop()
    ctes = [f"deferred_{i} AS ({part})" for i, part in enumerate(parts)] + searched
    if not ctes:
        return final, bool(answer)
    return f"WITH {', '.join(ctes)} {final}", bool(answer)


def _shift(sql: str, by: int) -> str:
    return _PARAM.sub(lambda m: f"${int(m.group(1)) + by}", sql) if by else sql


def _queue(session: Session) -> list[Deferred]:
    """The waiting writes of the session's current transaction (a new one starts empty)."""
    transaction = session.get_transaction()
    held = session.info.get(_DEFERRED)
    if held is None or held[0] is not transaction:
        held = (transaction, [])
        session.info[_DEFERRED] = held
    queue: list[Deferred] = held[1]
    return queue


def _pending(session: Session) -> list[Deferred]:
    held = session.info.get(_DEFERRED)
    if held is None or not held[1]:
        return []
    if held[0] is not session.get_transaction():
        session.info.pop(_DEFERRED, None)  # its transaction ended without them
        return []
    waiting: list[Deferred] = held[1]
    return waiting


def _send_first(session: Session) -> None:
    """Before SQLAlchemy sends anything on a session with reads asked ahead or writes waiting,
    send them (these hooks run inside SQLAlchemy's greenlet, where an await can be driven)."""
    if not (session.info.get(_AHEAD) or _pending(session)):
        return
    owner = async_session(session)
    if owner is None:
        raise RuntimeError("deferred work is only queued through an AsyncSession")
    if session.info.get(_AHEAD):
        await_(send_ahead(owner))
    if _pending(session):
        await_(send_deferred(owner))


@event.listens_for(Session, "do_orm_execute")
def _before_orm_execute(state: ORMExecuteState) -> None:
    _send_first(state.session)


def _refuse_continuations(session: Session) -> None:
    """Inside a flush, or as a savepoint opens, a waiting coroutine must not run: it may add
    and flush rows itself (not inside a flush), and its writes would land in the savepoint
    (and go if it rolls back)."""
    if any(w.then is not None for w in _pending(session)):
        raise RuntimeError("a deferred write with a continuation is waiting: send_deferred first")


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, *_: Any) -> None:
    _refuse_continuations(session)
    _send_first(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _send_first(session)


@event.listens_for(Session, "after_transaction_create")
def _before_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        _refuse_continuations(session)
        _send_first(session)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_DEFERRED, None)
