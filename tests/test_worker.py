"""The worker: killing it (SIGKILL) mid-delivery and starting it again loses no event; it runs
as many jobs at once as XIAOPU_WORKER_CONCURRENCY says."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import asyncpg
import httpx
import pytest
from pgqueuer import Queries
from pgqueuer.db import AsyncpgDriver
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TEST_ATTRIBUTION_SECRET, TEST_JWT_SECRET, make_settings
from tests.factories import api_key, supplier
from tests.webhooks.receiver import Receiver, receiver
from xiaopu import worker
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.jobs import Entrypoint, JobContext, schedules
from xiaopu.models import DeliveryStatus, Event, WebhookDelivery

EVENTS = 30


def _start_worker(database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": database_url,
        "XIAOPU_JWT_SECRET": TEST_JWT_SECRET,
        "XIAOPU_ATTRIBUTION_SECRET": TEST_ATTRIBUTION_SECRET,
        "XIAOPU_WEBHOOK_ALLOW_LOOPBACK": "true",
        "XIAOPU_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "xiaopu.cli", "worker", "--heartbeat-seconds", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def _kill_after(hook: Receiver, worker: subprocess.Popen[bytes], received: int) -> None:
    await hook.wait_for(received, within=60)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)


@pytest.mark.concurrent
async def test_sigkilled_worker_loses_no_event(
    concurrent_client: httpx.AsyncClient, fresh_db_url: str
) -> None:
    client = concurrent_client
    with receiver() as hook:
        # Slow answers keep several deliveries in flight when the kill lands.
        hook.delay_seconds = 0.05
        supplier_id, owner = await supplier(client)
        endpoint = await client.post(
            f"/v1/suppliers/{supplier_id}/webhook-endpoints",
            json={"url": hook.url, "event_types": ["api_key.created"]},
            headers=owner,
        )
        assert endpoint.status_code == 201, endpoint.text
        await asyncio.gather(
            *(api_key(client, supplier_id, owner, ["supplier:read"]) for _ in range(EVENTS))
        )

        # Kill the worker at several points of the run, then let a last one finish.
        for received in (2, 10, 20):
            worker = _start_worker(fresh_db_url)
            await _kill_after(hook, worker, received)
        worker = _start_worker(fresh_db_url)
        try:
            engine = create_engine(make_settings(fresh_db_url))
            sessionmaker = create_sessionmaker(engine)
            for _ in range(600):
                async with sessionmaker() as session:
                    pending = await session.scalar(
                        select(func.count())
                        .select_from(WebhookDelivery)
                        .where(WebhookDelivery.status != DeliveryStatus.succeeded)
                    )
                if pending == 0:
                    break
                await asyncio.sleep(0.1)
            async with sessionmaker() as session:
                event_ids = set((await session.scalars(select(Event.id))).all())
                deliveries = (await session.scalars(select(WebhookDelivery))).all()
            await engine.dispose()
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0

    assert len(event_ids) == EVENTS
    assert all(d.status is DeliveryStatus.succeeded for d in deliveries), [
        (d.status, d.attempts) for d in deliveries
    ]
    received_ids = {r.headers["webhook-id"] for r in hook.requests}
    # Every event arrived; duplicates are allowed, and a duplicate carries the same webhook-id.
    assert received_ids == {f"msg_{event_id.hex}" for event_id in event_ids}
    assert len(hook.requests) >= EVENTS


def test_schedules_are_declared_once_with_valid_cron() -> None:
    declared = schedules()
    names = [s.name for s in declared]
    assert len(names) == len(set(names))
    for schedule in declared:
        assert len(schedule.cron.split()) in (5, 6), schedule
        assert schedule.description


@pytest.mark.concurrent
@pytest.mark.parametrize("concurrency", [1, 3])
async def test_the_worker_runs_as_many_jobs_at_once_as_configured(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    running = 0
    peak = 0
    ran = 0

    async def slow(session: AsyncSession, ctx: JobContext, payload: bytes) -> None:
        nonlocal running, peak, ran
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        running -= 1
        ran += 1

    monkeypatch.setattr(worker, "entrypoints", lambda: {"test.slow": Entrypoint(slow)})
    monkeypatch.setattr(worker, "schedules", list)
    jobs = 3 * concurrency + 1
    connection = await asyncpg.connect(fresh_db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await Queries(AsyncpgDriver(connection)).enqueue(
            ["test.slow"] * jobs, [None] * jobs, [0] * jobs
        )
    finally:
        await connection.close()

    settings = make_settings(fresh_db_url, worker_concurrency=concurrency)
    await asyncio.wait_for(worker.run_worker(settings, drain=True), timeout=60)

    assert ran == jobs
    assert peak == concurrency


@pytest.mark.parametrize(
    ("concurrency", "limits"), [(1, (1, 2)), (2, (1, 2)), (5, (2, 5)), (20, (10, 20))]
)
def test_pgqueuer_is_asked_for_no_more_jobs_than_the_setting(
    concurrency: int, limits: tuple[int, int]
) -> None:
    batch_size, max_picked = worker.dequeue_limits(concurrency)
    assert (batch_size, max_picked) == limits
    assert max_picked >= 2 * batch_size  # what pgqueuer requires
