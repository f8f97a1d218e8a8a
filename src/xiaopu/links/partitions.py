"""Monthly partitions of the clicks table, made ahead of time by a schedule."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.clock import utcnow
from xiaopu.queue import JobContext

log = structlog.get_logger(__name__)
MONTHS_AHEAD = 3


def month_starts(first: date, count: int) -> list[date]:
    starts = []
    for offset in range(count + 1):
        year, month = divmod(first.month - 1 + offset, 12)
        starts.append(date(first.year + year, month + 1, 1))
    return starts


async def ensure_partitions(session: AsyncSession, _: JobContext, __: bytes) -> None:
    starts = month_starts(utcnow().date().replace(day=1), MONTHS_AHEAD + 1)
    for start, end in pairwise(starts):
        await session.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS clicks_{start:%Y_%m} PARTITION OF clicks "
                f"FOR VALUES FROM ('{start}') TO ('{end}')"
            )
        )
    log.info("click_partitions_ensured", through=str(starts[-2]))
