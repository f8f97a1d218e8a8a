"""The worker: killing it (SIGKILL) mid-delivery and starting it again loses no event."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import TEST_ATTRIBUTION_SECRET, TEST_JWT_SECRET, make_settings
from tests.factories import api_key, supplier
from tests.webhooks.receiver import Receiver, receiver
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.jobs import schedules
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
