"""Scheduled ledger work: reconciliation of balance counters against entries."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.ledger import service
from xiaopu.queue import JobContext


async def reconcile(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    await service.reconcile(session)
