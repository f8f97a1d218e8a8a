"""Scheduled organisation work: closing ended months of overrides."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.organisations import overrides
from xiaopu.queue import JobContext

log = structlog.get_logger(__name__)


async def close_months(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    # Each organisation-month closes in its own transaction (Schedule.own_transactions):
    # `session` is left unused.
    if ctx.sessionmaker is None:
        raise RuntimeError("organisations.close_months needs JobContext.sessionmaker")
    run = await overrides.close_months_in_steps(ctx.sessionmaker, ctx.settings)
    if run.closed:
        log.info(
            "overrides.months_closed",
            closed=run.closed,
            released_minor=run.released_minor,
            returned_minor=run.returned_minor,
        )
