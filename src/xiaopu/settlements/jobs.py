"""Scheduled settlement work: closing periods, and paying supplier payouts."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.queue import JobContext
from xiaopu.settlements import payouts, service

log = structlog.get_logger(__name__)


async def close(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    # Each supplier closes in its own transaction (Schedule.own_transactions): `session` is
    # left unused.
    if ctx.sessionmaker is None:
        raise RuntimeError("settlements.close needs JobContext.sessionmaker")
    result = await service.close_due_in_steps(ctx.sessionmaker, ctx.settings)
    if not result.skipped:
        log.info(
            "settlements.closed",
            period=result.period.kind,
            first_day=str(result.period.first_day),
            settlements=result.settlements,
            failed_suppliers=result.failed_suppliers,
        )


async def pay(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    # Paying commits between its steps (Schedule.own_transactions): it opens its own units of
    # work and leaves `session` unused.
    if ctx.sessionmaker is None:
        raise RuntimeError("settlements.pay needs JobContext.sessionmaker")
    run = await payouts.pay_supplier_payouts(ctx.sessionmaker, ctx.settings)
    if run.paid or run.failed or run.unanswered:
        log.info(
            "supplier_payouts.run",
            paid=run.paid,
            failed=run.failed,
            recovered=run.recovered,
            unanswered=run.unanswered,
        )
