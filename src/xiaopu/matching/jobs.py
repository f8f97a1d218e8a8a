"""The nightly matching job: recommendations for every shop and shops for every product."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.matching import service
from xiaopu.queue import JobContext

COMPUTE_JOB = "matching.compute"


async def compute(session: AsyncSession, ctx: JobContext, _: bytes) -> None:
    await service.compute_all(session, ctx.settings)
