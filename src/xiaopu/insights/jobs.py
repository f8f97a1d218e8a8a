"""Background work for dashboards: folding changed orders into the daily rollups."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu import queue
from xiaopu.insights import rollup
from xiaopu.queue import JobContext

log = structlog.get_logger(__name__)

ROLLUP_JOB = "insights.rollup"
# Changes (orders) folded per run: one transaction of a few set-based statements.
ROLLUP_BATCH = 5000


async def run_rollup(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    taken = await rollup.run(session, ctx.settings.zone, ROLLUP_BATCH)
    if taken is None:
        log.info("insights.rollup_busy")  # another run holds it; the next schedule comes soon
        return
    if taken:
        log.info("insights.rolled_up", changes=taken)
    if taken == ROLLUP_BATCH:
        # More wait: run again at once, queued with this batch's commit.
        await queue.enqueue(session, ROLLUP_JOB, b"")
