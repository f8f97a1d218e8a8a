"""Payout runs racing for real: two runs never claim one withdrawal, and a run drains every
waiting withdrawal in chunks with bounded provider concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.catalogue.helpers import new_actor, open_shop
from tests.conftest import make_settings
from tests.payouts.helpers import Recording, fund
from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.ledger import service as ledger
from xiaopu.models import Withdrawal, WithdrawalStatus
from xiaopu.payouts import service as payouts
from xiaopu.payouts.schemas import WithdrawalIn

pytestmark = pytest.mark.concurrent

SHOPS = 16
PER_SHOP = 15


async def _waiting_withdrawals(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> dict[uuid.UUID, int]:
    """SHOPS × PER_SHOP requested CNY withdrawals, some of which the sandbox refuses."""
    keepers = []
    for _ in range(SHOPS):
        keeper = await new_actor(client)
        shop_id = uuid.UUID((await open_shop(client, keeper.headers))["id"])
        async with sessions() as session:
            await fund(session, shop_id, 10_000_000, "CNY")
            await session.commit()
        keepers.append(uuid.UUID(keeper.account_id))
    asked: dict[uuid.UUID, int] = {}
    # Shop after shop, as shopkeepers ask in turn, so a claimed chunk spans many shops.
    for n in range(PER_SHOP):
        for s, account_id in enumerate(keepers):
            amount = 1_000 + 100 * n + (13 if (s + n) % 7 == 0 else 0)
            async with sessions() as session:
                out = await payouts.request_withdrawal(
                    session, settings, account_id, WithdrawalIn(amount_minor=amount, currency="CNY")
                )
                await session.commit()
            asked[out.id] = amount
    return asked


async def test_two_runs_never_claim_one_withdrawal(
    concurrent_client: httpx.AsyncClient, fresh_db_url: str
) -> None:
    settings = make_settings(fresh_db_url, payout_claim_size=25, payout_concurrency=8)
    engine = create_engine(make_settings(fresh_db_url, db_pool_size=30))
    sessions = create_sessionmaker(engine)
    try:
        asked = await _waiting_withdrawals(concurrent_client, sessions, settings)
        provider = Recording(settings)
        runs = await asyncio.gather(
            payouts.run_payouts(sessions, settings, provider=provider),
            payouts.run_payouts(sessions, settings, provider=provider),
        )
        async with sessions() as session:
            rows = (await session.scalars(select(Withdrawal))).all()
            paid_out = await session.scalar(
                select(func.sum(Withdrawal.amount_minor)).where(
                    Withdrawal.status == WithdrawalStatus.paid
                )
            )
            unbalanced = await ledger.reconcile(session)
    finally:
        await engine.dispose()

    # Every withdrawal was claimed once (one attempt, one key) and asked of the provider once.
    assert Counter(provider.paid) == Counter(f"withdrawal:{i}:0" for i in asked)
    assert provider.looked_up == []
    assert {w.id: (w.attempts, w.status) for w in rows} == {
        i: (1, WithdrawalStatus.failed if a % 100 == 13 else WithdrawalStatus.paid)
        for i, a in asked.items()
    }
    # The two runs' batches share no withdrawal and together hold every one.
    claimed = [
        Counter(w.batch_id for w in rows if w.batch_id in {b.id for b in r.batches}) for r in runs
    ]
    assert sum(sum(c.values()) for c in claimed) == len(asked)
    for run, counts in zip(runs, claimed, strict=True):
        assert {b.id: b.item_count for b in run.batches} == dict(counts)
        assert all(b.paid_count + b.failed_count == b.item_count for b in run.batches)
    assert paid_out == sum(a for a in asked.values() if a % 100 != 13)
    assert unbalanced == 0
