"""The audit log is append-only in the database, and its hash chain shows any edit or gap."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import make_settings
from xiaopu.audit import service as audit
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.models import AuditAction, SupplierStatus


async def _three(session: AsyncSession) -> list[uuid.UUID]:
    ids = []
    for n in range(3):
        row = await audit.record(
            session,
            None,
            AuditAction.supplier_suspend,
            "supplier",
            uuid.uuid4(),
            reason=f"reason {n}",
            before={"status": SupplierStatus.active},
            after={"status": SupplierStatus.suspended, "n": n},
            actor="cli:test",
        )
        ids.append(row.id)
    return ids


async def test_records_are_numbered_and_chained(session: AsyncSession) -> None:
    await _three(session)
    rows = (
        await session.execute(text("SELECT seq, prev_hash, hash FROM audit_records ORDER BY seq"))
    ).all()
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == audit.GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    report = await audit.verify_chain(session)
    assert (report.ok, report.records) == (True, 3)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET reason = 'nothing happened' WHERE seq = 2",
        "DELETE FROM audit_records WHERE seq = 3",
        "TRUNCATE audit_records",
    ],
)
async def test_changing_or_removing_records_is_refused(
    session: AsyncSession, statement: str
) -> None:
    await _three(session)
    with pytest.raises(DBAPIError, match="audit_records is append-only"):
        async with session.begin_nested():
            await session.execute(text(statement))
    assert await session.scalar(text("SELECT count(*) FROM audit_records")) == 3


async def _tamper(
    session: AsyncSession, statement: str, params: dict[str, object] | None = None
) -> None:
    """What someone with the table owner's rights could do: switch the triggers off."""
    await session.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
    await session.execute(text(statement), params)
    await session.execute(text("ALTER TABLE audit_records ENABLE TRIGGER USER"))


@pytest.mark.parametrize(
    ("statement", "broken_at", "problem"),
    [
        (
            "UPDATE audit_records SET reason = 'nothing happened' WHERE seq = 2",
            2,
            "the record was changed after it was written",
        ),
        (
            """UPDATE audit_records SET "after" = '{"status": "active", "n": 1}' WHERE seq = 2""",
            2,
            "the record was changed after it was written",
        ),
        ("DELETE FROM audit_records WHERE seq = 2", 3, "record 2 is missing"),
        # Removing a record and renumbering the rest still breaks the links.
        (
            "DELETE FROM audit_records WHERE seq = 2; "
            "UPDATE audit_records SET seq = 2 WHERE seq = 3",
            2,
            "prev_hash is not the previous record's hash",
        ),
    ],
)
async def test_tampering_is_detected(
    session: AsyncSession, statement: str, broken_at: int, problem: str
) -> None:
    await _three(session)
    for part in statement.split("; "):
        await _tamper(session, part)
    report = await audit.verify_chain(session)
    assert not report.ok
    assert (report.broken_at, report.problem, report.records) == (broken_at, problem, 1)


async def test_a_recomputed_hash_breaks_the_next_link(session: AsyncSession) -> None:
    """Editing a record and writing a matching hash for it still leaves the next record
    pointing at the old hash."""
    await _three(session)
    await _tamper(session, "UPDATE audit_records SET reason = 'edited' WHERE seq = 2")
    row = (await session.execute(text("SELECT * FROM audit_records WHERE seq = 2"))).one()
    new_hash = audit.chain_hash(row.prev_hash, row)
    await _tamper(session, "UPDATE audit_records SET hash = :h WHERE seq = 2", {"h": new_hash})
    report = await audit.verify_chain(session)
    assert (report.broken_at, report.problem) == (3, "prev_hash is not the previous record's hash")


async def test_concurrent_appends_form_one_chain(fresh_db_url: str) -> None:
    """Operators acting at once: each append waits for the one before it to commit, so no two
    records share a number or a predecessor."""
    engine = create_engine(make_settings(fresh_db_url, db_pool_size=12))
    sessions = create_sessionmaker(engine)

    async def act(n: int) -> None:
        async with sessions() as session, session.begin():
            await audit.record(
                session, None, AuditAction.payout_run, "payout_run", None, actor=f"cli:{n}"
            )
            await asyncio.sleep(0.01)  # still holding the chain when the others arrive

    try:
        await asyncio.gather(*(act(n) for n in range(12)))
        async with sessions() as session:
            report = await audit.verify_chain(session)
            actors = await session.scalars(text("SELECT actor FROM audit_records ORDER BY seq"))
            assert sorted(actors.all()) == sorted(f"cli:{n}" for n in range(12))
    finally:
        await engine.dispose()
    assert (report.ok, report.records) == (True, 12)
