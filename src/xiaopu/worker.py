"""`xiaopu worker`: runs queued jobs and schedules on pgqueuer until stopped."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta

import asyncpg
import httpx
import structlog
from pgqueuer import PgQueuer
from pgqueuer.errors import RetryRequested
from pgqueuer.models import Job, Schedule
from pgqueuer.types import QueueExecutionMode
from prometheus_client import Counter, Histogram

from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.jobs import JobContext, JobHandler, entrypoints, schedules
from xiaopu.kit.metrics_http import MetricsServer

log = structlog.get_logger(__name__)

# A job whose handler keeps raising is retried this often, then held for inspection.
MAX_JOB_ATTEMPTS = 10

JOBS = Counter(
    "xiaopu_worker_jobs_total",
    "Jobs the worker ran, by entrypoint and outcome: succeeded; retried (failed, queued again "
    "with a delay); failed (failed for the last time, held for inspection).",
    ["entrypoint", "outcome"],
)
JOB_DURATION = Histogram(
    "xiaopu_worker_job_duration_seconds",
    "Time a job ran, from getting its turn to its commit, failed ones too.",
    ["entrypoint"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


def _observe(entrypoint: str, started: float | None) -> None:
    if started is not None:
        JOB_DURATION.labels(entrypoint).observe(time.perf_counter() - started)


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def dequeue_limits(concurrency: int) -> tuple[int, int]:
    """pgqueuer's batch size and cap on the jobs it holds at once, for running `concurrency`
    jobs at once. It refuses a cap under twice the batch size, so the batch is half the cap;
    and a cap of 1 it cannot take at all: it holds 2 then, and the worker's own semaphore keeps
    the second waiting."""
    return max(1, concurrency // 2), max(2, concurrency)


async def run_worker(
    settings: Settings,
    *,
    drain: bool = False,
    heartbeat_timeout: timedelta = timedelta(seconds=30),
) -> None:
    if settings.database_url is None:
        raise RuntimeError("the worker needs XIAOPU_DATABASE_URL")
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    connection = await asyncpg.connect(_plain_dsn(settings.database_url))
    http = httpx.AsyncClient(follow_redirects=False)
    ctx = JobContext(settings=settings, http=http, sessionmaker=sessionmaker)
    pgq = PgQueuer.from_asyncpg_connection(connection)

    running = asyncio.Semaphore(settings.worker_concurrency)
    batch_size, max_picked = dequeue_limits(settings.worker_concurrency)

    def register(name: str, handler: JobHandler, *, own_transactions: bool = False) -> None:
        async def run(job: Job) -> None:
            # Timed from when the job gets its turn, so the latency is the job's, not the wait.
            started: float | None = None
            try:
                async with running:
                    started = time.perf_counter()
                    if own_transactions:
                        # The handler commits its own steps through ctx.sessionmaker.
                        async with sessionmaker() as session:
                            await handler(session, ctx, job.payload or b"")
                    else:
                        # One unit of work per job: the handler's writes and any jobs it queues
                        # commit together, after it returns.
                        async with sessionmaker() as session, session.begin():
                            await handler(session, ctx, job.payload or b"")
            except Exception as exc:
                _observe(name, started)
                log.exception("job_failed", entrypoint=name, job_id=job.id, attempts=job.attempts)
                if job.attempts + 1 >= MAX_JOB_ATTEMPTS:
                    JOBS.labels(name, "failed").inc()
                    raise
                JOBS.labels(name, "retried").inc()
                raise RetryRequested(
                    delay=timedelta(seconds=min(300, 2**job.attempts)), reason=str(exc)[:200]
                ) from exc
            _observe(name, started)
            JOBS.labels(name, "succeeded").inc()

        pgq.entrypoint(name, on_failure="hold")(run)

    for name, entry in entrypoints().items():
        register(name, entry.handler, own_transactions=entry.own_transactions)
    for schedule in schedules():
        register(schedule.name, schedule.handler, own_transactions=schedule.own_transactions)

        async def trigger(_: Schedule, name: str = schedule.name) -> None:
            # A schedule only queues the job, so it gets the same retries as any other.
            await pgq.qm.queries.enqueue(name, None)

        pgq.schedule(schedule.name, schedule.cron)(trigger)

    metrics = MetricsServer(
        healthy=lambda: not pgq.shutdown.is_set() and not connection.is_closed()
    )
    if settings.worker_metrics_port:
        await metrics.start(settings.host, settings.worker_metrics_port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, pgq.shutdown.set)
    log.info(
        "worker_started", entrypoints=sorted(entrypoints()), drain=drain, metrics_port=metrics.port
    )
    try:
        if drain:
            await pgq.qm.run(
                mode=QueueExecutionMode.drain,
                batch_size=batch_size,
                max_concurrent_tasks=max_picked,
                heartbeat_timeout=heartbeat_timeout,
                dequeue_timeout=timedelta(seconds=1),
            )
        else:
            await pgq.run(
                batch_size=batch_size,
                max_concurrent_tasks=max_picked,
                heartbeat_timeout=heartbeat_timeout,
                # Jobs of a dead worker are only picked up again on a dequeue pass.
                dequeue_timeout=min(heartbeat_timeout, timedelta(seconds=30)),
            )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await metrics.stop()
        await http.aclose()
        await connection.close()
        await engine.dispose()
        log.info("worker_stopped")
