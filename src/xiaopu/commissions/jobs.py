"""Background work for statements: building a requested export, and deleting expired ones."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.commissions import exports
from xiaopu.queue import JobContext

log = structlog.get_logger(__name__)

EXPORT_JOB = exports.EXPORT_JOB
PURGE_JOB = "statements.exports_purge"


async def export(session: AsyncSession, ctx: JobContext, payload: bytes) -> None:
    # Commits between its steps (claim, then the chunks): `session` is left unused.
    if ctx.sessionmaker is None:
        raise RuntimeError("statements.export needs JobContext.sessionmaker")
    retention = timedelta(hours=ctx.settings.statement_export_retention_hours)
    await exports.build(ctx.sessionmaker, uuid.UUID(payload.decode()), retention=retention)


async def purge(session: AsyncSession, _: JobContext, __: bytes) -> None:
    expired = await exports.purge_expired(session)
    log.info("statement_exports_expired", expired=expired)
