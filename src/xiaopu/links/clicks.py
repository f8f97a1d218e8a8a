"""Clicks: counted in memory on the redirect, written in batches with COPY off the hot path.

The redirect only appends a tuple to a bounded buffer; a background task copies the buffer into
the partitioned `clicks` table and bumps the daily counters in the same transaction. If the
database is down the buffer holds what it can and counts what it had to drop, so a database
outage costs analytics, never redirects or memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from datetime import datetime

import structlog
import uuid_utils
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.db import raw_connection

log = structlog.get_logger(__name__)

CLICKS_RECORDED = Counter("xiaopu_clicks_recorded_total", "Clicks queued for writing.")
CLICKS_WRITTEN = Counter("xiaopu_clicks_written_total", "Clicks written to the database.")
CLICKS_DROPPED = Counter(
    "xiaopu_clicks_dropped_total", "Clicks dropped because the buffer was full."
)
CLICK_FLUSH_FAILURES = Counter("xiaopu_click_flush_failures_total", "Failed click writes.")
CLICKS_BUFFERED = Gauge("xiaopu_clicks_buffered", "Clicks waiting to be written.")

REPEAT_WINDOW_SECONDS = 3600.0
COLUMNS = (
    "id",
    "created_at",
    "link_id",
    "shop_id",
    "product_id",
    "visitor_id",
    "referrer_host",
    "agent_class",
    "is_repeat",
)
# The click id is uuid_utils' UUID (made on the redirect without a stdlib object).
ClickRow = tuple[
    uuid_utils.UUID, datetime, uuid.UUID, uuid.UUID, uuid.UUID | None, str, str | None, str, bool
]

_STATS_SQL = text(
    """
    WITH fresh AS (
        SELECT link_id, day, visitor_id
        FROM unnest(CAST(:links AS uuid[]), CAST(:days AS date[]), CAST(:visitors AS text[]))
            AS t(link_id, day, visitor_id)
    ), new_visitors AS (
        INSERT INTO link_daily_visitors (link_id, day, visitor_id)
        SELECT DISTINCT link_id, day, visitor_id FROM fresh
        ON CONFLICT DO NOTHING
        RETURNING link_id, day
    ), uniques AS (
        SELECT link_id, day, count(*) AS n FROM new_visitors GROUP BY link_id, day
    ), counted AS (
        SELECT link_id, day, count(*) AS n FROM fresh GROUP BY link_id, day
    )
    INSERT INTO link_daily_stats (link_id, day, clicks, unique_visitors)
    SELECT counted.link_id, counted.day, counted.n, coalesce(uniques.n, 0)
    FROM counted LEFT JOIN uniques USING (link_id, day)
    ON CONFLICT (link_id, day) DO UPDATE SET
        clicks = link_daily_stats.clicks + EXCLUDED.clicks,
        unique_visitors = link_daily_stats.unique_visitors + EXCLUDED.unique_visitors
    """
)


class ClickRecorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_buffer: int,
        flush_interval: float = 0.5,
        max_visitors_tracked: int = 200_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._max_buffer = max_buffer
        self._flush_interval = flush_interval
        self._buffer: list[ClickRow] = []
        # (link, visitor) -> monotonic time of the counted click, oldest first.
        self._counted: OrderedDict[tuple[uuid.UUID, str], float] = OrderedDict()
        self._max_tracked = max_visitors_tracked
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self.recorded = 0
        self.dropped = 0
        self.written = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def is_repeat(self, link_id: uuid.UUID, visitor_id: str) -> bool:
        """Whether this visitor's click on this link was already counted within the hour."""
        now = time.monotonic()
        key = (link_id, visitor_id)
        seen = self._counted.get(key)
        if seen is not None and now - seen < REPEAT_WINDOW_SECONDS:
            return True
        self._counted[key] = now
        self._counted.move_to_end(key)
        while len(self._counted) > self._max_tracked:
            self._counted.popitem(last=False)
        return False

    def record(self, row: ClickRow) -> bool:
        """Queue a click; False (and counted as dropped) when the buffer is full."""
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            CLICKS_DROPPED.inc()
            return False
        self._buffer.append(row)
        self.recorded += 1
        CLICKS_RECORDED.inc()
        return True

    async def flush(self) -> int:
        """Write what is buffered; on failure the clicks go back to the buffer (within its cap)."""
        async with self._lock:
            if not self._buffer:
                return 0
            batch, self._buffer = self._buffer, []
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._buffer = batch + self._buffer
                raise
            except Exception:
                CLICK_FLUSH_FAILURES.inc()
                log.warning("click_flush_failed", clicks=len(batch), exc_info=True)
                room = max(0, self._max_buffer - len(self._buffer))
                kept = batch[:room]
                lost = len(batch) - len(kept)
                self._buffer = kept + self._buffer
                if lost:
                    self.dropped += lost
                    CLICKS_DROPPED.inc(lost)
                return 0
            finally:
                CLICKS_BUFFERED.set(len(self._buffer))
            self.written += len(batch)
            CLICKS_WRITTEN.inc(len(batch))
            return len(batch)

    async def _write(self, batch: list[ClickRow]) -> None:
        counted = [row for row in batch if not row[8]]
        async with self._sessionmaker() as session:
            raw = await raw_connection(session)
            await raw.copy_records_to_table("clicks", records=batch, columns=COLUMNS)
            if counted:
                await session.execute(
                    _STATS_SQL,
                    {
                        "links": [row[2] for row in counted],
                        "days": [row[1].date() for row in counted],
                        "visitors": [row[5] for row in counted],
                    },
                )
            await session.commit()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._flush_interval)
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="click-flusher")

    async def stop(self) -> None:
        """Graceful shutdown: let the flusher finish its write (never cancel it mid-batch),
        then write everything still buffered."""
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None
        for _ in range(3):
            if not self._buffer:
                break
            await self.flush()
