"""Queries for stored idempotent responses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.models import IdempotencyKey


async def try_lock(session: AsyncSession, principal: str, key: str) -> bool:
    """Take a transaction-scoped advisory lock on (principal, key) without waiting."""
    locked = await session.scalar(
        select(func.pg_try_advisory_xact_lock(func.hashtextextended(f"{principal}\n{key}", 0)))
    )
    return bool(locked)


async def find(session: AsyncSession, principal: str, key: str) -> IdempotencyKey | None:
    return await session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.principal == principal, IdempotencyKey.key == key
        )
    )


async def purge_before(session: AsyncSession, cutoff: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
