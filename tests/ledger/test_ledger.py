"""The ledger's laws hold at the database: balanced transactions, append-only entries."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import AlreadyPosted, Leg, UnbalancedPosting
from xiaopu.models.ledger import PLATFORM_ID, LedgerEntry, LedgerTransaction, OwnerKind, Purpose


def _legs(shop: uuid.UUID, amount: int) -> list[Leg]:
    return [
        Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, amount),
        Leg(OwnerKind.shop, shop, Purpose.earnings_pending, -amount),
    ]


async def _post(session: AsyncSession, shop: uuid.UUID, amount: int, cause: str) -> uuid.UUID:
    posted = await ledger.post(
        session, kind="test", cause=cause, currency="CNY", legs=_legs(shop, amount)
    )
    assert posted is not None
    return posted


async def test_an_entry_cannot_be_updated_deleted_or_truncated(session: AsyncSession) -> None:
    await _post(session, uuid.uuid4(), 500, f"test:{uuid.uuid4()}")
    for statement in (
        "UPDATE ledger_entries SET amount_minor = amount_minor + 1",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
        "UPDATE ledger_transactions SET memo = 'edited'",
        "DELETE FROM ledger_transactions",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with session.begin_nested():
                await session.execute(text(statement))
    assert await session.scalar(select(func.count()).select_from(LedgerEntry)) >= 2


async def test_an_unbalanced_transaction_is_refused_by_the_database(
    session: AsyncSession,
) -> None:
    transaction_id = await _post(session, uuid.uuid4(), 500, f"test:{uuid.uuid4()}")
    account = await session.scalar(text("SELECT account_id FROM ledger_entries LIMIT 1"))
    with pytest.raises(DBAPIError, match="does not balance"):
        async with session.begin_nested():
            await session.execute(
                text(
                    "INSERT INTO ledger_entries (id, transaction_id, account_id, amount_minor, "
                    "currency, created_at) VALUES (:id, :t, :a, 7, 'CNY', now())"
                ),
                {"id": uuid.uuid4(), "t": transaction_id, "a": account},
            )


async def test_unbalanced_legs_are_a_bug_caught_before_the_database(
    session: AsyncSession,
) -> None:
    legs = [*_legs(uuid.uuid4(), 500), Leg(OwnerKind.platform, PLATFORM_ID, Purpose.fees, 1)]
    with pytest.raises(UnbalancedPosting):
        await ledger.post(session, kind="test", cause="test:bad", currency="CNY", legs=legs)


async def test_a_cause_posts_once(session: AsyncSession) -> None:
    shop, cause = uuid.uuid4(), f"test:{uuid.uuid4()}"
    await _post(session, shop, 500, cause)
    again = await ledger.post(
        session, kind="test", cause=cause, currency="CNY", legs=_legs(shop, 500), replay_ok=True
    )
    assert again is None
    with pytest.raises(AlreadyPosted):
        await ledger.post(session, kind="test", cause=cause, currency="CNY", legs=_legs(shop, 500))
    count = await session.scalar(
        select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.cause == cause)
    )
    assert count == 1
    balances = await ledger.balances(session, OwnerKind.shop, shop)
    assert balances == {"CNY": {Purpose.earnings_pending: -500}}


async def test_reconciliation_finds_a_counter_that_drifted(session: AsyncSession) -> None:
    shop = uuid.uuid4()
    await _post(session, shop, 500, f"test:{uuid.uuid4()}")
    await _post(session, shop, 250, f"test:{uuid.uuid4()}")
    assert await ledger.reconcile(session) == 0
    await session.execute(
        text("UPDATE ledger_accounts SET balance_minor = balance_minor + 1 WHERE owner_id = :s"),
        {"s": shop},
    )
    assert await ledger.reconcile(session) == 1
