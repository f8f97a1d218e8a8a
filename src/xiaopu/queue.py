"""Background jobs on pgqueuer: enqueue inside the caller's transaction."""

from __future__ import annotations

from datetime import timedelta

from pgqueuer import Queries
from pgqueuer.db import AsyncpgDriver
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import raw_connection


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
    raw = await raw_connection(session)
    await Queries(AsyncpgDriver(raw)).enqueue(
        entrypoint, payload, execute_after=execute_after or timedelta(0)
    )


async def enqueue_many(session: AsyncSession, entrypoint: str, payloads: list[bytes]) -> None:
    """Queue many jobs of one kind, to run now, in one statement (see enqueue)."""
    if not payloads:
        return
    raw = await raw_connection(session)
    count = len(payloads)
    await Queries(AsyncpgDriver(raw)).enqueue(
        [entrypoint] * count, list(payloads), [0] * count, [timedelta(0)] * count
    )
