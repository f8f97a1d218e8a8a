"""Background jobs on pgqueuer: what a job's handler is given, and enqueueing inside the
caller's transaction. The domains' job modules import this, never the registry (xiaopu.jobs)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
from pgqueuer import Queries
from pgqueuer.db import AsyncpgDriver
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.config import Settings
from xiaopu.db import raw_connection


@dataclass(frozen=True, slots=True)
class JobContext:
    settings: Settings
    http: httpx.AsyncClient
    # For a job that commits between its steps (`Schedule.own_transactions`): each step opens
    # its own unit of work with it. The worker always sets it.
    sessionmaker: async_sessionmaker[AsyncSession] | None = None


JobHandler = Callable[[AsyncSession, JobContext, bytes], Awaitable[None]]


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
