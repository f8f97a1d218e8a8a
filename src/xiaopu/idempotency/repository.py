"""Queries for stored idempotent responses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import Deferred, Read, defer, raw_connection
from xiaopu.kit.ids import new_id
from xiaopu.models import IdempotencyKey


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: bytes
    response_status: int
    response_body: Any


_CLAIM = """
SELECT pg_try_advisory_xact_lock(hashtextextended($1 || E'\\n' || $2, 0)) AS locked,
       k.fingerprint, k.response_status, k.response_body
FROM (SELECT 1) AS one
LEFT JOIN idempotency_keys AS k ON k.principal = $1 AND k.key = $2
"""
_LOOKUP = """
SELECT fingerprint, response_status, response_body FROM idempotency_keys
WHERE principal = $1 AND key = $2
"""
# A twin request that stored the key first makes this insert nothing, and the unit of work
# fail with ConcurrentChange (see store).
_STORE = """
INSERT INTO idempotency_keys (id, principal, key, method, path, fingerprint, response_status,
                              response_body, completed_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
ON CONFLICT (principal, key) DO NOTHING
RETURNING 1
"""


async def claim(session: AsyncSession, principal: str, key: str) -> tuple[bool, Stored | None]:
    """In one round trip: take a transaction-scoped advisory lock on (principal, key) without
    waiting, and read the response stored under the key, if any. On the session's own
    connection: every money-moving request pays for this, and SQLAlchemy's execution path
    costs several times the query."""
    raw = await raw_connection(session)
    row = await raw.fetchrow(_CLAIM, principal, key)
    if row["fingerprint"] is None:
        return bool(row["locked"]), None
    return bool(row["locked"]), Stored(
        bytes(row["fingerprint"]), row["response_status"], row["response_body"]
    )


def lookup(principal: str, key: str) -> Read[Stored | None]:
    """The response stored under the key, if any: a read asked with the work's own, without a
    lock or a transaction (for a request that commits as one statement: store settles a
    twin)."""
    return Read(_LOOKUP, (principal, key), _stored)


def _stored(rows: Sequence[Any]) -> Stored | None:
    if not rows:
        return None
    fingerprint, status, body = rows[0]
    return Stored(bytes(fingerprint), status, body)


async def store(
    session: AsyncSession,
    *,
    principal: str,
    key: str,
    method: str,
    path: str,
    fingerprint: bytes,
    status: int,
    body_json: str,
    at: datetime,
) -> None:
    """Store the first response; `body_json` is its body as JSON text. Deferred: it is the
    request's last write, and goes with the unit of work's next statement (its commit, or the
    writes the work left waiting). Should a twin request have stored the key meanwhile, the unit
    of work fails with ConcurrentChange and keeps nothing; run again, it replays the twin's."""
    params = (new_id(), principal, key, method, path, fingerprint, status, body_json, at)
    await defer(session, Deferred((_STORE,), params, expect=1))


async def purge_before(session: AsyncSession, cutoff: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
