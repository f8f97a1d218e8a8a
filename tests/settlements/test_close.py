"""The close's rules: statements numbered per supplier without gaps across currencies, a late
movement lands in the next statement, and a supplier whose books do not add up is left out
(and logged) while the others close."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog.testing
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import supplier
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models.ledger import PLATFORM_ID, OwnerKind, Purpose
from xiaopu.settlements import service

MONDAY = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def _after_week(week: int) -> datetime:
    return datetime(2026, 12, 6, 16, 10, tzinfo=UTC) + timedelta(weeks=week)


async def _credit(
    session: AsyncSession,
    supplier_id: str,
    amount: int,
    currency: str = "CNY",
    kind: str = "test_credit",
) -> None:
    await ledger.post(
        session,
        kind=kind,
        cause=f"test:{uuid.uuid4()}",
        currency=currency,
        legs=[
            Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, amount),
            Leg(OwnerKind.supplier, uuid.UUID(supplier_id), Purpose.payable, -amount),
        ],
    )


async def _statements(session: AsyncSession, supplier_id: str) -> list[tuple[int, str, int]]:
    rows = await session.execute(
        text(
            "SELECT number, currency, net_minor FROM settlements WHERE supplier_id = :s "
            "ORDER BY number"
        ),
        {"s": supplier_id},
    )
    return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]


async def test_numbers_run_per_supplier_across_currencies_without_gaps(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(MONDAY)
    supplier_id, _ = await supplier(client)
    await _credit(session, supplier_id, 1_000, "CNY")
    await _credit(session, supplier_id, 25, "JPY")
    await service.close_due(session, settings, _after_week(0))
    test_clock.freeze(MONDAY + timedelta(weeks=1))
    await _credit(session, supplier_id, 3_000, "CNY")
    await service.close_due(session, settings, _after_week(1))
    # A week with no movement freezes nothing.
    await service.close_due(session, settings, _after_week(2))
    assert await _statements(session, supplier_id) == [
        (1, "CNY", 1_000),
        (2, "JPY", 25),
        (3, "CNY", 3_000),
    ]


async def test_a_movement_arriving_after_its_week_closed_lands_in_the_next_statement(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(MONDAY)
    supplier_id, _ = await supplier(client)
    await _credit(session, supplier_id, 1_000)
    await service.close_due(session, settings, _after_week(0))
    # Timed inside the closed week (a transaction that began before midnight and committed
    # after the close): settled by the next statement, not lost.
    test_clock.freeze(MONDAY + timedelta(days=6))
    await _credit(session, supplier_id, 200)
    test_clock.freeze(MONDAY + timedelta(weeks=1))
    await _credit(session, supplier_id, 30)
    await service.close_due(session, settings, _after_week(1))
    assert await _statements(session, supplier_id) == [(1, "CNY", 1_000), (2, "CNY", 230)]
    late = await session.scalar(
        text(
            "SELECT l.at FROM settlement_lines l JOIN settlements s ON s.id = l.settlement_id "
            "WHERE s.supplier_id = :s AND s.number = 2 AND l.net_minor = 200"
        ),
        {"s": supplier_id},
    )
    assert late == MONDAY + timedelta(days=6)


async def test_a_supplier_whose_books_do_not_add_up_is_left_out_and_retried(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(MONDAY)
    sound, _ = await supplier(client)
    broken, _ = await supplier(client)
    await _credit(session, sound, 1_000)
    await _credit(session, broken, 1_000)
    # A completion posting no completed supplier order explains.
    await _credit(session, broken, 500, kind="completion")
    with structlog.testing.capture_logs() as logs:
        result = await service.close_due(session, settings, _after_week(0))
    assert (result.settlements, result.failed_suppliers) == (1, 1)
    (mismatch,) = [e for e in logs if e["event"] == "settlement.mismatch"]
    assert mismatch["supplier_id"] == broken
    assert await _statements(session, sound) == [(1, "CNY", 1_000)]
    assert await _statements(session, broken) == []
    # Nothing of the broken supplier's close was kept; the next run tries it again.
    again = await service.close_due(session, settings, _after_week(0) + timedelta(hours=1))
    assert not again.skipped
    assert again.failed_suppliers == 1
    assert await ledger.reconcile(session) == 0


async def test_a_statement_is_frozen(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(MONDAY)
    supplier_id, _ = await supplier(client)
    await _credit(session, supplier_id, 1_000)
    await service.close_due(session, settings, _after_week(0))
    await session.commit()
    for statement in (
        "UPDATE settlements SET net_minor = 0, payout_minor = 0 WHERE supplier_id = :s",
        "DELETE FROM settlement_lines WHERE settlement_id IN "
        "(SELECT id FROM settlements WHERE supplier_id = :s)",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with session.begin_nested():
                await session.execute(text(statement), {"s": supplier_id})
    assert await _statements(session, supplier_id) == [(1, "CNY", 1_000)]
