"""Test harness: a migrated PostgreSQL, per-test rollback, the real app over ASGITransport."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from xiaopu import devdb
from xiaopu.app import create_app
from xiaopu.config import PROJECT_ROOT, Environment, Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.kit.clock import Clock, clock
from xiaopu.migrate import upgrade

T = TypeVar("T")

# Per-run database names, so two test runs on one server never drop each other's databases.
RUN_PREFIX = f"xiaopu_t{os.getpid()}"
TEMPLATE_DB = f"{RUN_PREFIX}_template"
MAIN_DB = f"{RUN_PREFIX}_main"
TEST_JWT_SECRET = "test-only-jwt-secret-0123456789abcdef0123456789"
TEST_ATTRIBUTION_SECRET = "test-only-attribution-secret-0123456789abcdef"


def _blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn in a thread: it may call asyncio.run, which must not touch the test loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _find_server() -> str:
    """XIAOPU_TEST_DATABASE_URL, else the server on 127.0.0.1:5432, else an embedded one."""
    configured = os.environ.get("XIAOPU_TEST_DATABASE_URL")
    if configured:
        return configured
    if _blocking(devdb.server_answers, devdb.LOCAL_SERVER_URL):
        return devdb.LOCAL_SERVER_URL
    return devdb.embedded_server_url(PROJECT_ROOT / ".data" / "pg-test")


async def _drop_databases(server_url: str, *, only_dead_runs: bool) -> None:
    """Drop this run's databases, or those left by runs whose process is gone."""
    conn = await asyncpg.connect(server_url)
    try:
        names = await conn.fetch(r"SELECT datname FROM pg_database WHERE datname ~ '^xiaopu_t\d+_'")
    finally:
        await conn.close()
    for (name,) in names:
        pid = int(name[len("xiaopu_t") :].split("_", 1)[0])
        if only_dead_runs and (pid == os.getpid() or _alive(pid)):
            continue
        if not only_dead_runs and pid != os.getpid():
            continue
        await devdb.drop_database(server_url, name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def db_server() -> Iterator[str]:
    server = _find_server()
    _blocking(asyncio.run, _drop_databases(server, only_dead_runs=True))
    yield server
    _blocking(asyncio.run, _drop_databases(server, only_dead_runs=False))


@pytest.fixture(scope="session")
def template_url(db_server: str) -> str:
    """A database migrated once per run; every test database is copied from it."""
    _blocking(asyncio.run, devdb.create_database(db_server, TEMPLATE_DB, replace=True))
    url = devdb.with_database(db_server, TEMPLATE_DB)
    _blocking(upgrade, url, quiet=True)
    return url


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": Environment.test,
        "database_url": database_url,
        "jwt_secret": TEST_JWT_SECRET,
        "attribution_secret": TEST_ATTRIBUTION_SECRET,
        "log_level": "WARNING",
        "webhook_allow_loopback": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def main_db_url(db_server: str, template_url: str) -> str:
    _blocking(
        asyncio.run, devdb.create_database(db_server, MAIN_DB, template=TEMPLATE_DB, replace=True)
    )
    return devdb.with_database(db_server, MAIN_DB)


@pytest.fixture(scope="session")
def settings(main_db_url: str) -> Settings:
    return make_settings(main_db_url)


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction per test, rolled back at its end."""
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            yield conn
        finally:
            await trans.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    # The app's commit becomes a savepoint release inside the test's transaction
    # (SQLAlchemy's "joining a session into an external transaction" recipe).
    return async_sessionmaker(
        bind=connection,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """For arranging data directly; flush, don't commit, what the app must see."""
    async with sessionmaker() as session:
        yield session


@pytest.fixture
async def client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def fresh_db_url(db_server: str, template_url: str) -> AsyncIterator[str]:
    """A database of its own, for tests that commit for real and run things concurrently."""
    name = f"{RUN_PREFIX}_{uuid.uuid4().hex[:12]}"
    await devdb.create_database(db_server, name, template=TEMPLATE_DB)
    try:
        yield devdb.with_database(db_server, name)
    finally:
        await devdb.drop_database(db_server, name)


@pytest.fixture
async def concurrent_client(fresh_db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a fresh database with a real pool: requests commit and race for real."""
    settings = make_settings(fresh_db_url, db_pool_size=20, db_max_overflow=40)
    engine = create_engine(settings)
    app = create_app(settings, sessionmaker=create_sessionmaker(engine))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await engine.dispose()


@pytest.fixture(autouse=True)
def test_clock() -> Iterator[Clock]:
    """The application clock; tests freeze or move it instead of sleeping."""
    clock.reset()
    yield clock
    clock.reset()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the driver is asked to run, in order."""
    sent: list[str] = []
    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        real = getattr(asyncpg.Connection, name)

        def spy(self: Any, query: str, *args: Any, _real: Any = real, **kw: Any) -> Any:
            sent.append(query)
            return _real(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, name, spy)
    return sent
