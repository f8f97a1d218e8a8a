"""The worker's own metrics, served on XIAOPU_WORKER_METRICS_PORT while it runs jobs."""

from __future__ import annotations

import socket

import asyncpg
import httpx
import pytest
from pgqueuer import Queries
from pgqueuer.db import AsyncpgDriver
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import make_settings
from xiaopu import worker
from xiaopu.jobs import Entrypoint, JobContext


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _jobs(entrypoint: str, outcome: str) -> float:
    labels = {"entrypoint": entrypoint, "outcome": outcome}
    return REGISTRY.get_sample_value("xiaopu_worker_jobs_total", labels) or 0.0


def _timed(entrypoint: str) -> float:
    labels = {"entrypoint": entrypoint}
    return REGISTRY.get_sample_value("xiaopu_worker_job_duration_seconds_count", labels) or 0.0


@pytest.mark.concurrent
async def test_the_worker_counts_its_jobs_and_serves_them_on_its_port(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    scraped: list[httpx.Response] = []
    failures = 0

    async def scrape(session: AsyncSession, ctx: JobContext, payload: bytes) -> None:
        # Runs inside the worker, so the port is up: what a Prometheus scrape sees mid-run.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            scraped.append(await http.get("/healthz"))
            scraped.append(await http.get("/metrics"))

    async def flaky(session: AsyncSession, ctx: JobContext, payload: bytes) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise RuntimeError("the first attempt fails")

    monkeypatch.setattr(
        worker,
        "entrypoints",
        lambda: {"test.scrape": Entrypoint(scrape), "test.flaky": Entrypoint(flaky)},
    )
    monkeypatch.setattr(worker, "schedules", list)
    succeeded, retried, timed = (
        _jobs("test.scrape", "succeeded"),
        _jobs("test.flaky", "retried"),
        _timed("test.scrape"),
    )
    connection = await asyncpg.connect(fresh_db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await Queries(AsyncpgDriver(connection)).enqueue(
            ["test.scrape", "test.flaky"], [None, None], [0, 0]
        )
    finally:
        await connection.close()

    settings = make_settings(fresh_db_url, worker_metrics_port=port, host="127.0.0.1")
    await worker.run_worker(settings, drain=True)

    assert _jobs("test.scrape", "succeeded") == succeeded + 1
    assert _jobs("test.flaky", "retried") == retried + 1
    assert _timed("test.scrape") == timed + 1
    health, metrics = scraped
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert metrics.status_code == 200
    for family in (
        "xiaopu_worker_jobs_total",
        "xiaopu_worker_job_duration_seconds",
        "xiaopu_webhook_deliveries_total",
        "xiaopu_ledger_mismatches",
    ):
        assert f"# TYPE {family} " in metrics.text, family
    # Stopped with the worker.
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/healthz")
