"""Clicks: counted in memory on the redirect, written in batches with COPY off the hot path.

The redirect only appends a tuple to a bounded buffer; a background task copies the buffer into
the partitioned `clicks` table and bumps the daily counters in the same transaction. If the
database is down the buffer holds what it can and counts what it had to drop, so a database
outage costs analytics, never redirects or memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from urllib.parse import urlsplit

import asyncpg
import structlog
import uuid_utils
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.db import raw_connection
from xiaopu.links.agents import AgentClass
from xiaopu.links.repository import LinkTarget

log = structlog.get_logger(__name__)

CLICKS_WRITTEN = Counter("xiaopu_clicks_written_total", "Clicks written to the database.")
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
# What the redirect buffers, as cheap to make as it can be: the click id, POSIX seconds, the
# cached link, the visitor, the raw Referer, the user-agent class and whether it repeats. The
# flusher encodes these straight into COPY's binary format.
Pending = tuple[uuid_utils.UUID, float, LinkTarget, str, bytes | None, str, bool]

# COPY BINARY (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4): a
# signature, flags and header-extension length; per row a field count, then each field as its
# byte length (-1 for NULL) and its value in the type's binary form; -1 as the trailer. asyncpg
# builds the same stream from Python values, but a datetime and a tuple per click, then its
# generic per-field encoder, cost more than everything else the flusher does; these fields
# are fixed-width or plain UTF-8.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_NULL = struct.pack(">i", -1)
# Field count, click id, and created_at as microseconds since 2000-01-01 UTC.
_ROW_START = struct.Struct(">hi16siq")
_LENGTH = struct.Struct(">i")
_PG_EPOCH_MICROS = 946_684_800_000_000  # 2000-01-01T00:00:00Z in POSIX microseconds
_REPEAT = {False: b"\x00\x00\x00\x01\x00", True: b"\x00\x00\x00\x01\x01"}


def _micros(at: float) -> int:
    """POSIX seconds as whole microseconds, rounded as datetime.fromtimestamp() rounds them
    (the row's created_at and the day it is counted on must agree)."""
    whole = int(at)
    return whole * 1_000_000 + round((at - whole) * 1_000_000)


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    encoded = value.encode()
    return _LENGTH.pack(len(encoded)) + encoded


def _uuid(value: uuid.UUID | None) -> bytes:
    return _NULL if value is None else b"\x00\x00\x00\x10" + value.bytes


_AGENTS = {agent.value: _text(agent.value) for agent in AgentClass}


def target_ids(target: LinkTarget) -> bytes:
    """The link, shop and product columns of a click on this target, encoded once per cached
    link (the redirect's cache keeps it on the target)."""
    return _uuid(target.link_id) + _uuid(target.shop_id) + _uuid(target.product_id)


def encode(batch: list[Pending]) -> bytes:
    """The batch as a COPY BINARY stream for COLUMNS."""
    return _COPY_HEADER + _encode_rows(batch) + _COPY_TRAILER


# Rows encoded between two turns of the event loop: a whole half-second batch encoded at once
# held every redirect waiting for it (the p99 doubled).
_CHUNK_ROWS = 1_000


async def _stream(batch: list[Pending]) -> AsyncIterator[bytes]:
    yield _COPY_HEADER
    for start in range(0, len(batch), _CHUNK_ROWS):
        await asyncio.sleep(0)
        yield _encode_rows(batch[start : start + _CHUNK_ROWS])
    yield _COPY_TRAILER


def _encode_rows(batch: list[Pending]) -> bytes:
    start = _ROW_START.pack
    parts: list[bytes] = []
    append = parts.append
    for click_id, at, target, visitor, referer, agent, repeat in batch:
        append(start(9, 16, click_id.bytes, 8, _micros(at) - _PG_EPOCH_MICROS))
        append(target.copy_ids or target_ids(target))
        append(_text(visitor))
        append(_text(referrer_host(referer)) if referer else _NULL)
        append(_AGENTS.get(agent) or _text(agent))
        append(_REPEAT[repeat])
    return b"".join(parts)


class _HotPathCounts(Collector):
    """Clicks recorded and dropped, read from the recorders' plain counters when scraped: a
    Prometheus counter's lock on every redirect would cost more than the rest of the count."""

    def __init__(self) -> None:
        self.recorders: weakref.WeakSet[ClickRecorder] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        recorders = list(self.recorders)
        yield CounterMetricFamily(
            "xiaopu_clicks_recorded",
            "Clicks queued for writing.",
            value=sum(r.recorded for r in recorders),
        )
        yield CounterMetricFamily(
            "xiaopu_clicks_dropped",
            "Clicks dropped because the buffer was full.",
            value=sum(r.dropped for r in recorders),
        )


_HOT_PATH_COUNTS = _HotPathCounts()
REGISTRY.register(_HOT_PATH_COUNTS)


def referrer_host(referer: bytes | None) -> str | None:
    if not referer:
        return None
    try:
        host = urlsplit(referer.decode("latin-1")).hostname
    except ValueError:  # e.g. "http://[::1": a broken header must not break anything
        return None
    return host[:255] if host else None


_DAY_MICROS = 86_400_000_000
_POSIX_EPOCH = date(1970, 1, 1)
# Offsets from UTC change only on quarter hours (every zone's transitions fall on them), so one
# lookup serves every click of the same quarter hour.
_QUARTER_MICROS = 900_000_000


class LocalDays:
    """The local day (in the platform's time zone) of a click's created_at, made once per
    quarter hour and day number in a batch."""

    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone
        self._offsets: dict[int, int] = {}
        self._days: dict[int, date] = {}

    def __call__(self, at: float) -> date:
        micros = _micros(at)
        quarter = micros // _QUARTER_MICROS
        offset = self._offsets.get(quarter)
        if offset is None:
            delta = datetime.fromtimestamp(quarter * 900, UTC).astimezone(self._zone).utcoffset()
            offset = self._offsets[quarter] = (
                0 if delta is None else delta // timedelta(microseconds=1)
            )
        number = (micros + offset) // _DAY_MICROS
        day = self._days.get(number)
        if day is None:
            day = self._days[number] = _POSIX_EPOCH + timedelta(days=number)
        return day


# A link's clicks and unique visitors of a day, and its shop's (the sum of its links'), in the
# transaction that stores the clicks.
_STATS_SQL = text(
    """
    WITH fresh AS (
        SELECT link_id, shop_id, product_id, day, visitor_id
        FROM unnest(CAST(:links AS uuid[]), CAST(:shops AS uuid[]), CAST(:products AS uuid[]),
            CAST(:days AS date[]), CAST(:visitors AS text[]))
            AS t(link_id, shop_id, product_id, day, visitor_id)
    ), new_visitors AS (
        INSERT INTO link_daily_visitors (link_id, day, visitor_id)
        SELECT DISTINCT link_id, day, visitor_id FROM fresh
        ON CONFLICT DO NOTHING
        RETURNING link_id, day
    ), uniques AS (
        SELECT link_id, day, count(*) AS n FROM new_visitors GROUP BY link_id, day
    ), counted AS (
        SELECT link_id, min(shop_id::text)::uuid AS shop_id,
            min(product_id::text)::uuid AS product_id, day, count(*) AS n
        FROM fresh GROUP BY link_id, day
    ), stats AS (
        SELECT counted.*, coalesce(uniques.n, 0) AS visitors
        FROM counted LEFT JOIN uniques USING (link_id, day)
    ), links AS (
        INSERT INTO link_daily_stats (link_id, day, shop_id, product_id, clicks, unique_visitors)
        SELECT link_id, day, shop_id, product_id, n, visitors FROM stats
        ON CONFLICT (link_id, day) DO UPDATE SET
            clicks = link_daily_stats.clicks + EXCLUDED.clicks,
            unique_visitors = link_daily_stats.unique_visitors + EXCLUDED.unique_visitors
    )
    INSERT INTO shop_daily_traffic (shop_id, day, clicks, unique_visitors)
    SELECT shop_id, day, sum(n), sum(visitors) FROM stats GROUP BY shop_id, day
    ORDER BY shop_id, day
    ON CONFLICT (shop_id, day) DO UPDATE SET
        clicks = shop_daily_traffic.clicks + EXCLUDED.clicks,
        unique_visitors = shop_daily_traffic.unique_visitors + EXCLUDED.unique_visitors
    """
)


_STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS clicks_incoming (LIKE clicks) ON COMMIT DELETE ROWS"
)
_FROM_STAGING = (
    "INSERT INTO clicks SELECT * FROM clicks_incoming ON CONFLICT DO NOTHING RETURNING id"
)


class ClickRecorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_buffer: int,
        flush_interval: float = 0.5,
        max_visitors_tracked: int = 200_000,
        zone: tzinfo = UTC,
    ) -> None:
        self._sessionmaker = sessionmaker
        # Days are counted in the platform's time zone: the days people read.
        self._zone = zone
        self._max_buffer = max_buffer
        self._flush_interval = flush_interval
        self._buffer: list[Pending] = []
        # visitor key (link code + visitor) -> when its counted click was, oldest first.
        self._counted: dict[str, float] = {}
        self._max_tracked = max_visitors_tracked
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self.recorded = 0
        self.dropped = 0
        self.written = 0
        _HOT_PATH_COUNTS.recorders.add(self)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def click(
        self,
        click_id: uuid_utils.UUID,
        at: float,
        target: LinkTarget,
        visitor_key: str,
        visitor: str,
        referer: bytes | None,
        agent: str,
    ) -> None:
        """Queue a click, marked a repeat when this visitor's click on this link was already
        counted within the hour. When the buffer is full the click is counted as dropped."""
        seen = self._counted.get(visitor_key)
        repeat = seen is not None and at - seen < REPEAT_WINDOW_SECONDS
        if not repeat:
            if seen is not None:
                del self._counted[visitor_key]  # re-inserted at the young end
            self._counted[visitor_key] = at
            if len(self._counted) > self._max_tracked:
                del self._counted[next(iter(self._counted))]
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            return
        self._buffer.append((click_id, at, target, visitor, referer, agent, repeat))
        self.recorded += 1

    async def flush(self) -> int:
        """Write what is buffered; on failure the clicks go back to the buffer (within its cap)."""
        async with self._lock:
            if not self._buffer:
                return 0
            batch, self._buffer = self._buffer, []
            try:
                try:
                    await self._write(batch)
                except asyncpg.UniqueViolationError:
                    # Some of these clicks are stored already: a write whose commit went
                    # through but whose answer was lost put them back. Written as they are,
                    # they would fail every flush from now on.
                    await self._write(batch, already_stored_possible=True)
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
                self.dropped += lost
                return 0
            finally:
                CLICKS_BUFFERED.set(len(self._buffer))
            self.written += len(batch)
            CLICKS_WRITTEN.inc(len(batch))
            return len(batch)

    async def _write(self, batch: list[Pending], *, already_stored_possible: bool = False) -> None:
        counted = [click for click in batch if not click[6]]
        days = LocalDays(self._zone)
        async with self._sessionmaker() as session:
            raw = await raw_connection(session)
            # The slow path, for that rare case only, goes through a staging table to skip the
            # clicks already stored (and already counted, in the transaction that stored them).
            if already_stored_possible:
                await raw.execute(_STAGING_TABLE)
            table = "clicks_incoming" if already_stored_possible else "clicks"
            await raw.copy_to_table(table, source=_stream(batch), columns=COLUMNS, format="binary")
            if already_stored_possible:
                fresh = {str(row["id"]) for row in await raw.fetch(_FROM_STAGING)}
                counted = [click for click in counted if str(click[0]) in fresh]
            if counted:
                await session.execute(
                    _STATS_SQL,
                    {
                        "links": [click[2].link_id for click in counted],
                        "shops": [click[2].shop_id for click in counted],
                        "products": [click[2].product_id for click in counted],
                        "days": [days(click[1]) for click in counted],
                        "visitors": [click[3] for click in counted],
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
