"""Engine and session factories, and the one-unit-of-work-per-request session dependency."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_

from xiaopu.config import Settings
from xiaopu.errors import AppError


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
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


# scope="function": the commit runs after the endpoint returns and before the response is sent,
# so a client never sees a success that was not committed.
DbSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]


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


async def _driver(session: AsyncSession, *, begin: bool) -> Any:
    if session.new or session.dirty or session.deleted:
        await session.flush()  # what raw SQL runs next may depend on it, as with autoflush
    transaction = session.sync_session.get_transaction()
    remembered = session.info.get(_RAW)
    if transaction is not None and remembered is not None and remembered[0] is transaction:
        return remembered[1]
    connection = await session.connection()
    adapted = (await connection.get_raw_connection()).dbapi_connection
    raw = adapted.driver_connection if adapted is not None else None
    assert raw is not None
    if begin:
        if not raw.is_in_transaction():
            await _begin(connection, adapted)
        session.info[_RAW] = (session.sync_session.get_transaction(), raw)
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
