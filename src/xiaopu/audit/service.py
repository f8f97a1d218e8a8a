"""Writing and reading the audit log, and proving its chain unbroken.

Every operator action calls `record` in its own transaction, after its change: the record
commits with the change or not at all. Records are numbered from 1 without gaps and chained:
`hash` = sha256(`prev_hash` + the record's canonical JSON), so an edit, a removal from the
middle or an insertion shows in `verify_chain`. (Removing the newest records leaves a shorter,
valid chain: compare the count or the last hash with one kept elsewhere to catch that.)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.audit import repository
from xiaopu.audit.repository import Filters
from xiaopu.audit.schemas import AuditOperator, AuditRecordOut
from xiaopu.errors import InvalidCursor
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import Page, PageParams, encode_cursor
from xiaopu.models import AuditAction, AuditRecord

GENESIS = bytes(32)  # the first record's prev_hash

State = dict[str, Any]


def _jsonable(value: State | None) -> State | None:
    """Plain JSON values (uuids, times and enums as strings), as JSONB will give them back, so
    the hash computed now is the hash recomputed from the stored row."""
    if value is None:
        return None
    plain: State = json.loads(json.dumps(value, default=str))
    return plain


def canonical(
    *,
    seq: int,
    id: uuid.UUID,
    at: datetime,
    operator_id: uuid.UUID | None,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | None,
    reason: str | None,
    before: State | None,
    after: State | None,
    request_id: str | None,
) -> bytes:
    """The bytes a record's hash covers: its fields as sorted, compact JSON."""
    fields = {
        "seq": seq,
        "id": str(id),
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "operator_id": None if operator_id is None else str(operator_id),
        "actor": actor,
        "action": str(action),
        "object_type": object_type,
        "object_id": object_id,
        "reason": reason,
        "before": before,
        "after": after,
        "request_id": request_id,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: bytes, record: Any) -> bytes:
    """sha256 over the previous hash and the record's canonical form; `record` is an
    AuditRecord or a row of the table."""
    body = canonical(
        seq=record.seq,
        id=record.id,
        at=record.at,
        operator_id=record.operator_id,
        actor=record.actor,
        action=record.action,
        object_type=record.object_type,
        object_id=record.object_id,
        reason=record.reason,
        before=record.before,
        after=record.after,
        request_id=record.request_id,
    )
    return hashlib.sha256(prev_hash + body).digest()


def _request_id() -> str | None:
    """The request's id as the access log has it (RequestContextMiddleware); None at the CLI."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


async def record(
    session: AsyncSession,
    operator_id: uuid.UUID | None,
    action: AuditAction,
    object_type: str,
    object_id: uuid.UUID | str | None,
    *,
    reason: str | None = None,
    before: State | None = None,
    after: State | None = None,
    actor: str | None = None,
) -> AuditRecord:
    """Append one record in the caller's transaction. `operator_id` is the acting operator's
    account (None at the command line, where `actor` says who). Call it last in a unit of work:
    the chain's lock is held until commit, so concurrent actions append one after another."""
    if actor is None:
        if operator_id is None:
            raise ValueError("a record without an operator needs an actor")
        actor = await repository.login_of(session, operator_id) or str(operator_id)
    await repository.lock_chain(session)
    last = await repository.last(session)
    seq, prev_hash = (1, GENESIS) if last is None else (last[0] + 1, last[1])
    row = AuditRecord(
        id=new_id(),
        seq=seq,
        at=utcnow(),
        operator_id=operator_id,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        reason=reason,
        before=_jsonable(before),
        after=_jsonable(after),
        request_id=_request_id(),
        prev_hash=prev_hash,
    )
    row.hash = chain_hash(prev_hash, row)
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True, slots=True)
class ChainReport:
    """`ok` when every record follows its predecessor; otherwise the first that does not."""

    records: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def verify_chain(session: AsyncSession) -> ChainReport:
    """Walk the log in order, recomputing every hash."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    async for row in repository.in_order(session):
        if row.seq != expected_seq:
            return ChainReport(count, row.seq, f"record {expected_seq} is missing")
        if row.prev_hash != prev_hash:
            return ChainReport(count, row.seq, "prev_hash is not the previous record's hash")
        if chain_hash(prev_hash, row) != row.hash:
            return ChainReport(count, row.seq, "the record was changed after it was written")
        expected_seq, prev_hash, count = row.seq + 1, row.hash, count + 1
    return ChainReport(count)


async def list_records(
    session: AsyncSession, filters: Filters, page: PageParams
) -> Page[AuditRecordOut]:
    """Newest first; the cursor is the last record's number."""
    before_seq: int | None = None
    if page.cursor is not None:
        values = page.decode()
        if len(values) != 1 or not isinstance(values[0], int):
            raise InvalidCursor()
        before_seq = values[0]
    rows = await repository.page(session, filters, before_seq, page.limit)
    cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        cursor = encode_cursor([rows[-1].record.seq])
    return Page[AuditRecordOut](items=[_out(r) for r in rows], next_cursor=cursor)


def _out(named: repository.Named) -> AuditRecordOut:
    r = named.record
    operator = (
        None
        if r.operator_id is None
        else AuditOperator(
            account_id=r.operator_id, display_name=named.display_name, login=named.login
        )
    )
    return AuditRecordOut(
        id=r.id,
        seq=r.seq,
        at=r.at,
        operator=operator,
        actor=r.actor,
        action=r.action,
        object_type=r.object_type,
        object_id=r.object_id,
        reason=r.reason,
        before=r.before,
        after=r.after,
        request_id=r.request_id,
        hash=r.hash.hex(),
        prev_hash=r.prev_hash.hex(),
    )
