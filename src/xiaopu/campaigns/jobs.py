"""Background work for campaigns: the clock that moves them, and the leaderboards' refresh."""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu import queue
from xiaopu.campaigns import service
from xiaopu.kit.clock import utcnow
from xiaopu.queue import JobContext

log = structlog.get_logger(__name__)

TICK_JOB = "campaigns.tick"
REFRESH_JOB = "campaigns.refresh"
# Between the minute's ticks, a live campaign's results are refreshed this often.
REFRESH_EVERY_SECONDS = 5


async def tick(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    live = await service.tick(session, utcnow())
    if live:
        log.info("campaigns.live", campaigns=len(live))
        # pgqueuer's schedules run by the minute: the refreshes in between are queued jobs,
        # committed with this tick.
        for seconds in range(REFRESH_EVERY_SECONDS, 60, REFRESH_EVERY_SECONDS):
            await queue.enqueue(session, REFRESH_JOB, b"", execute_after=timedelta(seconds=seconds))


async def refresh(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    await service.refresh_live(session)
