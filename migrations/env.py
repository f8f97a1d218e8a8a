"""Alembic environment: async engine, our naming convention, short lock timeout."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from xiaopu.config import get_settings
from xiaopu.db import async_url
from xiaopu.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or get_settings().database_url
    if not url:
        raise RuntimeError("set XIAOPU_DATABASE_URL (or use `xiaopu migrate`, which finds one)")
    return async_url(str(url))


def include_name(name: str | None, type_: str, _: object) -> bool:
    """pgqueuer's tables come from its own DDL and click partitions from a scheduled job;
    neither is one of our models."""
    if type_ != "table" or name is None:
        return True
    return not (name.startswith("pgqueuer") or name.startswith("clicks_"))


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_name=include_name,
        # Each revision commits on its own: the locks one takes (a new column, a constraint, a
        # backfill) are let go before the next revision starts, not held to the last one.
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        # Fail fast instead of queueing behind long transactions and blocking everyone else.
        connection.execute(text("SET lock_timeout = '5s'"))
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_database_url(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
