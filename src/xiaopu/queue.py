"""Background jobs on pgqueuer: enqueue inside the caller's transaction."""

from __future__ import annotations

from datetime import timedelta

from pgqueuer import Queries
from pgqueuer.db import AsyncpgDriver
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def enqueue(
    session: AsyncSession,
    entrypoint: str,
    payload: bytes,
    *,
    execute_after: timedelta | None = None,
) -> None:
    """Queue a job on the session's own connection and transaction.

    If the transaction rolls back, the job never existed; once it commits, the job is durable.
    """
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    if not raw.is_in_transaction():
        # SQLAlchemy opens the transaction lazily; make sure the job lands inside it.
        await connection.execute(text("SELECT 1"))
    await Queries(AsyncpgDriver(raw)).enqueue(
        entrypoint, payload, execute_after=execute_after or timedelta(0)
    )
