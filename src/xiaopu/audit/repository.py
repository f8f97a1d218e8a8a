"""Queries of the audit log: appending under the chain's lock, pages, and the chain in order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.models import Account, AuditAction, AuditRecord

# One lock for the whole chain: appends are serialised from reading the last hash to commit.
_CHAIN_LOCK = "audit_records:chain"


async def lock_chain(session: AsyncSession) -> None:
    """Held until the transaction ends, so a concurrent append reads this one's hash after it
    commits (or finds it rolled back). Operator actions take it last, after their own rows'
    locks, and hold nothing else after it: it cannot deadlock."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": _CHAIN_LOCK}
    )


async def last(session: AsyncSession) -> tuple[int, bytes] | None:
    row = (
        await session.execute(
            select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
        )
    ).first()
    return None if row is None else (row.seq, row.hash)


async def login_of(session: AsyncSession, account_id: uuid.UUID) -> str | None:
    return await session.scalar(
        select(func.coalesce(Account.email, Account.phone)).where(Account.id == account_id)
    )


@dataclass(frozen=True, slots=True)
class Filters:
    operator_id: uuid.UUID | None = None
    object_type: str | None = None
    object_id: str | None = None
    action: AuditAction | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Named:
    """A record with its operator's account as it is now."""

    record: AuditRecord
    display_name: str | None
    login: str | None


async def page(
    session: AsyncSession, filters: Filters, before_seq: int | None, limit: int
) -> list[Named]:
    """Newest first, below `before_seq`; one extra row to detect the end."""
    stmt = select(
        AuditRecord, Account.display_name, func.coalesce(Account.email, Account.phone)
    ).outerjoin(Account, Account.id == AuditRecord.operator_id)
    if filters.operator_id is not None:
        stmt = stmt.where(AuditRecord.operator_id == filters.operator_id)
    if filters.object_type is not None:
        stmt = stmt.where(AuditRecord.object_type == filters.object_type)
    if filters.object_id is not None:
        stmt = stmt.where(AuditRecord.object_id == filters.object_id)
    if filters.action is not None:
        stmt = stmt.where(AuditRecord.action == filters.action)
    if filters.since is not None:
        stmt = stmt.where(AuditRecord.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditRecord.at < filters.until)
    if before_seq is not None:
        stmt = stmt.where(AuditRecord.seq < before_seq)
    rows = await session.execute(stmt.order_by(AuditRecord.seq.desc()).limit(limit + 1))
    return [Named(record, name, login) for record, name, login in rows]


async def in_order(session: AsyncSession, batch: int = 1000) -> AsyncIterator[Row[Any]]:
    """Every record by `seq` as plain rows (not tracked by the session), a batch at a time
    (keyset), so a long log is never held at once."""
    table = AuditRecord.__table__
    after = 0
    while True:
        rows = (
            await session.execute(
                select(table).where(table.c.seq > after).order_by(table.c.seq).limit(batch)
            )
        ).all()
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1].seq
