"""Finding a PostgreSQL for development and tests: configured, local on 5432, or embedded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def embedded_server_url(pgdata: Path) -> str:
    """Start (or reuse) a PostgreSQL from the pgserver package; it stops when this process exits.

    As root, pgserver runs the server as a dedicated system user, as PostgreSQL requires.
    """
    from pgserver import get_server  # type: ignore[attr-defined]

    pgdata.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    return str(server.get_uri("postgres"))


async def _answers(url: str, wait: float) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=wait)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def server_answers(url: str, wait: float = 2.0) -> bool:
    return asyncio.run(_answers(url, wait))


def with_database(server_url: str, dbname: str) -> str:
    """The same server URL pointed at another database (keeps ?host=/socket queries)."""
    head, sep, query = server_url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{dbname}{sep}{query}"


async def create_database(
    server_url: str, dbname: str, *, template: str | None = None, replace: bool = False
) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname)
        if exists and not replace:
            return
        quoted = '"' + dbname.replace('"', '""') + '"'
        if exists:
            await conn.execute(f"DROP DATABASE {quoted} WITH (FORCE)")
        tpl = "" if template is None else ' TEMPLATE "' + template.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}{tpl}")
    finally:
        await conn.close()


async def drop_database(server_url: str, dbname: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        quoted = '"' + dbname.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()
