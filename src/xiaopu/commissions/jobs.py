"""Background work for statements: building a requested export."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.commissions import exports
from xiaopu.queue import JobContext

EXPORT_JOB = exports.EXPORT_JOB


async def export(session: AsyncSession, ctx: JobContext, payload: bytes) -> None:
    # Commits between its steps (claim, then the chunks): `session` is left unused.
    if ctx.sessionmaker is None:
        raise RuntimeError("statements.export needs JobContext.sessionmaker")
    await exports.build(ctx.sessionmaker, uuid.UUID(payload.decode()))
