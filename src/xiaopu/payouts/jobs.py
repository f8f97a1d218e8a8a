"""Scheduled payout batches."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.jobs import JobContext
from xiaopu.payouts import service

log = structlog.get_logger(__name__)


async def run(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    for batch in await service.run_batches(session, ctx.settings):
        log.info(
            "payouts.batch",
            batch_id=str(batch.id),
            paid=batch.paid_count,
            failed=batch.failed_count,
        )
