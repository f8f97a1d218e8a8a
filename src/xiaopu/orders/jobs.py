"""Background work for orders: refunds through the provider, expiry of unpaid orders, completion."""

from __future__ import annotations

import json
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.jobs import JobContext
from xiaopu.orders import fulfilment, payments, service

log = structlog.get_logger(__name__)


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


async def complete(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    completed = await fulfilment.complete_due(session, ctx.settings)
    if completed:
        log.info("supplier_orders.completed", count=completed)
