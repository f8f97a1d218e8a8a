"""Scheduled settlement work: closing periods, and paying supplier payouts."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from xiaopu.db import create_sessionmaker
from xiaopu.jobs import JobContext
from xiaopu.settlements import payouts, service

log = structlog.get_logger(__name__)


async def close(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    result = await service.close_due(session, ctx.settings)
    if not result.skipped:
        log.info(
            "settlements.closed",
            period=result.period.kind,
            first_day=str(result.period.first_day),
            settlements=result.settlements,
            failed_suppliers=result.failed_suppliers,
        )


async def pay(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    # Paying commits between its steps, so it cannot run in the job's one unit of work: it
    # opens its own sessions on the same engine (and leaves `session` unused).
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        raise RuntimeError("the job's session is not bound to an engine")
    run = await payouts.pay_supplier_payouts(create_sessionmaker(engine), ctx.settings)
    if run.paid or run.failed or run.unanswered:
        log.info(
            "supplier_payouts.run",
            paid=run.paid,
            failed=run.failed,
            recovered=run.recovered,
            unanswered=run.unanswered,
        )
