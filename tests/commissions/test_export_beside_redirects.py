"""A big statement export runs in the worker, beside the API: redirects keep answering fast
while it is produced."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import make_settings
from tests.links.helpers import product_link_code
from xiaopu.app import create_app
from xiaopu.commissions import exports
from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker

BROWSER = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36"
LINES = 20_000  # ten times the inline limit: only an export gives it
T0 = datetime(2026, 10, 1, tzinfo=UTC)

# A supplier's 20,000 sale lines of one month, three parts each, set-based. Foreign keys are
# not checked for these rows (session_replication_role): what matters is their number.
_BUILD = [
    "SET LOCAL session_replication_role = replica",
    "INSERT INTO suppliers (id, name, status, created_at, updated_at) "
    "VALUES (:s, 'big', 'active', now(), now())",
    """
    INSERT INTO commissions (id, order_id, supplier_order_id, order_line_id, shop_id,
        supplier_id, beneficiary, kind, currency, base_minor, rule, rounding, accrued_minor,
        reversed_minor, status, created_at, updated_at)
    SELECT gen_random_uuid(), CAST(md5('o' || n / 3) AS uuid), CAST(md5('o' || n / 3) AS uuid),
        CAST(md5('l' || n / 3) AS uuid), CAST(md5('shop') AS uuid), :s,
        (ARRAY['supplier', 'shop', 'platform'])[n % 3 + 1],
        (ARRAY['supplier_share', 'commission', 'platform_fee'])[n % 3 + 1], 'CNY', 10000,
        'normal', 'half-up', (ARRAY[8500, 1000, 500])[n % 3 + 1], 0, 'pending',
        CAST(:t0 AS timestamptz) + (n / 3) * interval '2 minutes', now()
    FROM generate_series(0, :parts - 1) AS n
    """,
    """
    INSERT INTO commission_events (id, commission_id, supplier_id, action, status, amount_minor,
        cause, at)
    SELECT gen_random_uuid(), id, supplier_id, 'accrued', 'pending', accrued_minor,
        'accrual:' || supplier_order_id, created_at
    FROM commissions WHERE supplier_id = :s
    """,
]


@pytest.fixture
async def live(fresh_db_url: str) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    settings = make_settings(fresh_db_url, db_pool_size=5, db_max_overflow=5)
    engine = create_engine(settings)
    app = create_app(settings, sessionmaker=create_sessionmaker(engine))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield settings, c
    finally:
        await engine.dispose()


def _worker(settings: Settings, export_id: uuid.UUID) -> None:
    """The worker's side, on its own loop and connections (a process of its own in production)."""

    async def run() -> None:
        engine = create_engine(settings)
        try:
            await exports.build(create_sessionmaker(engine), export_id, retention=timedelta(days=7))
        finally:
            await engine.dispose()

    asyncio.run(run())


async def test_redirects_answer_within_50ms_while_a_big_export_is_built(
    live: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = live
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    supplier_id = uuid.uuid4()
    try:
        async with sessions() as session:
            code = await product_link_code(client, session)
            for sql in _BUILD:
                await session.execute(text(sql), {"s": supplier_id, "t0": T0, "parts": LINES * 3})
            export_id = uuid.uuid4()
            await session.execute(
                text(
                    "INSERT INTO statement_exports (id, supplier_id, since, until, status, "
                    "lines, size_bytes, created_at) VALUES (:e, :s, :since, :until, 'queued', "
                    "0, 0, now())"
                ),
                {"e": export_id, "s": supplier_id, "since": T0, "until": T0 + timedelta(days=31)},
            )
            await session.commit()

        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as pool:
            building = loop.run_in_executor(pool, _worker, settings, export_id)
            latencies: list[float] = []
            while not building.done():
                started = time.perf_counter()
                response = await client.get(f"/s/{code}", headers={"user-agent": BROWSER})
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 302
                await asyncio.sleep(0.01)
            await building

        async with sessions() as session:
            done = (
                await session.execute(
                    text("SELECT status, lines FROM statement_exports WHERE id = :e"),
                    {"e": export_id},
                )
            ).one()
    finally:
        await engine.dispose()
    assert (done.status, done.lines) == ("ready", LINES)
    assert len(latencies) >= 10, latencies  # the redirects really ran during the build
    p95 = statistics.quantiles(latencies, n=20)[-1]
    assert p95 < 50, (p95, max(latencies), len(latencies))
