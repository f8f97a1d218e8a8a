"""A payout run stopped between any two steps pays nobody twice and loses nothing; a later run
takes over what it left claimed, asking the provider before it pays."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import make_settings
from tests.orders.helpers import key
from tests.payouts.helpers import Recording, batches_of, sandbox_keys, shop_with_available
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.models import Withdrawal, WithdrawalStatus
from xiaopu.payouts import service as payouts
from xiaopu.payouts.providers import (
    Payee,
    PayeeKind,
)
from xiaopu.payouts.service import Claim, Step, StepHook

# The sandbox refuses amounts ending in 13 minor units.
AMOUNTS = [1_000, 2_500, 1_113, 4_000]
CLAIM_TIMEOUT = timedelta(seconds=300)


class Crash(Exception):
    """Stands in for the worker dying at a step."""


def crash_at(step: Step) -> StepHook:
    def hook(reached: Step) -> None:
        if reached == step:
            raise Crash(step)

    return hook


async def _withdrawals(
    client: httpx.AsyncClient, session: AsyncSession, amounts: list[int]
) -> list[uuid.UUID]:
    """Two shopkeepers' withdrawals of these amounts, requested in turn."""
    keepers = [await shop_with_available(client, session, 20_000) for _ in range(2)]
    ids = []
    for i, amount in enumerate(amounts):
        keeper, _ = keepers[i % 2]
        asked = await client.post(
            "/v1/shops/mine/withdrawals",
            json={"amount_minor": amount, "currency": "CNY"},
            headers={**keeper.headers, **key()},
        )
        assert asked.status_code == 201, asked.text
        ids.append(uuid.UUID(asked.json()["id"]))
    return ids


async def _statuses(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        select(Withdrawal.id, Withdrawal.status)
        .where(Withdrawal.id.in_(ids))
        .execution_options(populate_existing=True)
    )
    return {row.id: str(row.status) for row in rows}


async def _assert_paid_exactly_once(session: AsyncSession, ids: list[uuid.UUID]) -> None:
    """Each withdrawal asked the provider once (attempt 0) and ended as the provider says;
    the ledger balances and shows one payout posting per withdrawal; one event each."""
    keys = await sandbox_keys(session, ids)
    assert keys == {
        f"withdrawal:{i}:0": amount % 100 != 13 for i, amount in zip(ids, AMOUNTS, strict=True)
    }
    assert await _statuses(session, ids) == {
        i: "failed" if amount % 100 == 13 else "paid"
        for i, amount in zip(ids, AMOUNTS, strict=True)
    }
    causes = (
        await session.scalars(
            text("SELECT cause FROM ledger_transactions WHERE cause = ANY(CAST(:c AS text[]))"),
            {
                "c": [f"{kind}:{i}:0" for i in ids for kind in ("payout", "payout-failed")],
            },
        )
    ).all()
    assert sorted(causes) == sorted(
        f"{'payout-failed' if amount % 100 == 13 else 'payout'}:{i}:0"
        for i, amount in zip(ids, AMOUNTS, strict=True)
    )
    events = (
        await session.scalars(
            text(
                "SELECT data->>'withdrawal_id' FROM events "
                "WHERE type IN ('payout.paid', 'payout.failed') "
                "AND data->>'withdrawal_id' = ANY(CAST(:ids AS text[]))"
            ),
            {"ids": [str(i) for i in ids]},
        )
    ).all()
    assert sorted(events) == sorted(str(i) for i in ids)
    paid_by_provider = sum(a for a in AMOUNTS if a % 100 != 13)
    paid_by_us = await session.scalar(
        select(func.sum(Withdrawal.amount_minor)).where(
            Withdrawal.id.in_(ids), Withdrawal.status == WithdrawalStatus.paid
        )
    )
    assert paid_by_us == paid_by_provider
    (batch,) = await batches_of(session, ids)
    assert (batch.item_count, batch.paid_count, batch.failed_count) == (4, 3, 1)
    assert batch.completed_at is not None
    assert await ledger.reconcile(session) == 0


@pytest.mark.parametrize("step", ["claimed", "called", "recorded"])
async def test_a_run_stopped_at_any_step_is_finished_by_a_later_one(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
    step: Step,
) -> None:
    test_clock.freeze()
    ids = await _withdrawals(client, session, AMOUNTS)
    one_at_a_time = make_settings(settings.database_url or "", payout_concurrency=1)
    provider = Recording(one_at_a_time)
    with pytest.raises(Crash):
        await payouts.run_payouts(
            sessionmaker, one_at_a_time, provider=provider, after_step=crash_at(step)
        )
    left = await _statuses(session, ids)
    at_provider = await sandbox_keys(session, ids)
    # A crash stops the run at once, though the next payout may have set off already.
    assert (len(at_provider) == 0) if step == "claimed" else (1 <= len(at_provider) <= 2)
    recorded = [s for s in left.values() if s != "processing"]
    assert len(recorded) == (1 if step == "recorded" else 0)
    # Committed claims: nothing is requested any more, so nobody else claims them again.
    assert "requested" not in left.values()

    # A run while the claims are fresh leaves them to their (maybe living) run.
    asked = len(provider.paid)
    fresh = await payouts.run_payouts(sessionmaker, one_at_a_time, provider=provider)
    assert (fresh.batches, fresh.taken_over, len(provider.paid)) == ([], 0, asked)
    assert await _statuses(session, ids) == left

    test_clock.advance(CLAIM_TIMEOUT + timedelta(seconds=1))
    later = await payouts.run_payouts(sessionmaker, one_at_a_time, provider=provider)
    assert (later.batches, later.taken_over, later.unsettled) == ([], 4 - len(recorded), 0)
    # Every claim left was looked up first; only keys the provider never saw were paid.
    assert len(provider.looked_up) == 4 - len(recorded)
    repaid = [k for k in provider.paid[asked:] if k in at_provider]
    assert repaid == []
    assert set(provider.paid) == {f"withdrawal:{i}:0" for i in ids}
    await _assert_paid_exactly_once(session, ids)


async def test_a_lost_answer_is_looked_up_not_paid_again(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze()
    ids = await _withdrawals(client, session, AMOUNTS)
    provider = Recording(settings)
    provider.lose_answer_for = {f"withdrawal:{ids[0]}:0"}
    provider.unreachable_for = {f"withdrawal:{ids[1]}:0"}
    first = await payouts.run_payouts(sessionmaker, settings, provider=provider)
    assert first.unsettled == 2
    (batch,) = first.batches
    assert (batch.item_count, batch.paid_count, batch.failed_count) == (4, 1, 1)
    assert batch.completed_at is None
    left = await _statuses(session, ids)
    assert (left[ids[0]], left[ids[1]]) == ("processing", "processing")

    provider.lose_answer_for = provider.unreachable_for = set()
    test_clock.advance(CLAIM_TIMEOUT + timedelta(seconds=1))
    later = await payouts.run_payouts(sessionmaker, settings, provider=provider)
    assert (later.taken_over, later.unsettled) == (2, 0)
    # The paid one was found at the provider; the one that never arrived was paid now.
    assert sorted(provider.looked_up) == sorted(f"withdrawal:{i}:0" for i in ids[:2])
    assert provider.paid.count(f"withdrawal:{ids[0]}:0") == 1
    assert provider.paid.count(f"withdrawal:{ids[1]}:0") == 1
    await _assert_paid_exactly_once(session, ids)


async def test_a_claim_recorded_by_the_run_that_took_it_over_is_not_recorded_again(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    """The first run was slow, not dead: its answer comes after another run recorded it."""
    test_clock.freeze()
    ids = await _withdrawals(client, session, AMOUNTS)
    provider = Recording(settings)
    with pytest.raises(Crash):
        await payouts.run_payouts(
            sessionmaker, settings, provider=provider, after_step=crash_at("claimed")
        )
    row = await session.get(Withdrawal, ids[0], populate_existing=True)
    assert row is not None
    assert row.payout_key is not None
    slow = Claim(row.id, row.shop_id, row.currency, row.amount_minor, 0, row.payout_key, False)
    test_clock.advance(CLAIM_TIMEOUT + timedelta(seconds=1))
    await payouts.run_payouts(sessionmaker, settings, provider=provider)
    answer = await provider.pay(
        slow.key, Payee(PayeeKind.shop, slow.shop_id), slow.amount_minor, slow.currency
    )
    assert answer.succeeded
    assert await payouts.record(sessionmaker, slow, answer) is False
    await _assert_paid_exactly_once(session, ids)
