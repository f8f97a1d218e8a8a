"""Scheduled purge of idempotency keys past their 24 hours."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.idempotency.service import purge_expired
from xiaopu.queue import JobContext

log = structlog.get_logger(__name__)


async def purge(session: AsyncSession, _: JobContext, __: bytes) -> None:
    deleted = await purge_expired(session)
    log.info("idempotency_keys_purged", deleted=deleted)
