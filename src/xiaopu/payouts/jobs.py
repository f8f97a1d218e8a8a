"""The scheduled payout run, and the test-only crash that proves it survives a dead worker."""

from __future__ import annotations

import os
import signal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.config import Settings
from xiaopu.payouts import service
from xiaopu.payouts.service import RUN_JOB, Step, StepHook
from xiaopu.queue import JobContext

__all__ = ["RUN_JOB", "run"]

log = structlog.get_logger(__name__)


async def run(_: AsyncSession, ctx: JobContext, __: bytes) -> None:
    """Commits between its steps, each on its own session from `ctx.sessionmaker`; the session
    it is handed (outside any transaction) is not used."""
    if ctx.sessionmaker is None:
        raise RuntimeError("payouts.run commits between steps: give its JobContext a sessionmaker")
    result = await service.run_payouts(
        ctx.sessionmaker, ctx.settings, after_step=_crash_hook(ctx.settings)
    )
    for batch in result.batches:
        log.info(
            "payouts.batch",
            batch_id=str(batch.id),
            currency=batch.currency,
            items=batch.item_count,
            paid=batch.paid_count,
            failed=batch.failed_count,
        )
    if result.taken_over or result.unsettled:
        log.warning("payouts.run", taken_over=result.taken_over, unsettled=result.unsettled)


def _crash_hook(settings: Settings) -> StepHook:
    crash_at = settings.payout_crash_at

    def crash(step: Step) -> None:
        if step == crash_at:
            # As abrupt as a power cut: no finally blocks, no rollback, no goodbye to the queue.
            os.kill(os.getpid(), signal.SIGKILL)

    return crash
