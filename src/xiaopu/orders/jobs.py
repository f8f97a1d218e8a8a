"""Background work for orders: refunds through the provider, expiry of unpaid orders, completion."""

from __future__ import annotations

import json
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu import queue
from xiaopu.orders import fulfilment, payments, service
from xiaopu.queue import JobContext

log = structlog.get_logger(__name__)

# The schedules' names (jobs.schedules): a run that finds more due queues the next one.
EXPIRE_JOB = "orders.expire"
COMPLETE_JOB = "orders.complete"


async def refund(_: AsyncSession, ctx: JobContext, payload: bytes) -> None:
    """Commits between its steps, each on its own session from `ctx.sessionmaker`, and asks
    the provider between them; the session it is handed (outside any transaction) is unused.
    Raises RefundBeingSent while another run's claim is live, so the worker retries it."""
    if ctx.sessionmaker is None:
        raise RuntimeError(
            "orders.refund commits between steps: give its JobContext a sessionmaker"
        )
    refund_id = uuid.UUID(json.loads(payload)["refund_id"])
    status = await payments.send_refund_in_steps(ctx.sessionmaker, ctx.settings, refund_id)
    log.info("refund.sent", refund_id=str(refund_id), status=str(status))


async def expire(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    expired = await service.expire_due(session)
    if expired:
        log.info("orders.expired", count=expired)
    if expired == service.EXPIRY_BATCH:
        await _again(session, EXPIRE_JOB)


async def complete(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    completed = await fulfilment.complete_due(session, ctx.settings)
    if completed:
        log.info("supplier_orders.completed", count=completed)
    if completed == fulfilment.COMPLETION_BATCH:
        await _again(session, COMPLETE_JOB)


async def _again(session: AsyncSession, job: str) -> None:
    """A full batch: more may be due, so the job runs again at once, queued with this batch's
    commit. Each batch is its own transaction, so a drain of any size holds the variants' and
    ledger accounts' locks (which checkout and payments need) for one batch at a time, keeps
    what it has done if it stops, and is shared by every worker free to take a run (their
    claims skip each other's rows)."""
    await queue.enqueue(session, job, b"")
