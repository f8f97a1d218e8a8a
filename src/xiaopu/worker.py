"""`xiaopu worker`: runs queued jobs and schedules on pgqueuer until stopped."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import asyncpg
import httpx
import structlog
from pgqueuer import PgQueuer
from pgqueuer.errors import RetryRequested
from pgqueuer.models import Job, Schedule
from pgqueuer.types import QueueExecutionMode

from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.jobs import JobContext, JobHandler, entrypoints, schedules

log = structlog.get_logger(__name__)

# A job whose handler keeps raising is retried this often, then held for inspection.
MAX_JOB_ATTEMPTS = 10


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
            try:
                if own_transactions:
                    # The handler commits its own steps through ctx.sessionmaker.
                    async with running, sessionmaker() as session:
                        await handler(session, ctx, job.payload or b"")
                    return
                # One unit of work per job: the handler's writes and any jobs it queues commit
                # together, after it returns.
                async with running, sessionmaker() as session, session.begin():
                    await handler(session, ctx, job.payload or b"")
            except Exception as exc:
                log.exception("job_failed", entrypoint=name, job_id=job.id, attempts=job.attempts)
                if job.attempts + 1 >= MAX_JOB_ATTEMPTS:
                    raise
                raise RetryRequested(
                    delay=timedelta(seconds=min(300, 2**job.attempts)), reason=str(exc)[:200]
                ) from exc

        pgq.entrypoint(name, on_failure="hold")(run)

    for name, entry in entrypoints().items():
        register(name, entry.handler, own_transactions=entry.own_transactions)
    for schedule in schedules():
        register(schedule.name, schedule.handler, own_transactions=schedule.own_transactions)

        async def trigger(_: Schedule, name: str = schedule.name) -> None:
            # A schedule only queues the job, so it gets the same retries as any other.
            await pgq.qm.queries.enqueue(name, None)

        pgq.schedule(schedule.name, schedule.cron)(trigger)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, pgq.shutdown.set)
    log.info("worker_started", entrypoints=sorted(entrypoints()), drain=drain)
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
        await http.aclose()
        await connection.close()
        await engine.dispose()
        log.info("worker_stopped")
