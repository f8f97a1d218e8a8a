"""The worker's payout job: SIGKILLed after a claim, after a provider answer and after a record,
then started again, it pays every withdrawal exactly once and the books balance."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.catalogue.helpers import Actor, new_actor, open_shop
from tests.conftest import TEST_ATTRIBUTION_SECRET, TEST_JWT_SECRET, make_settings
from tests.factories import make_operator
from tests.orders.helpers import key
from tests.payouts.helpers import fund
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.jobs import schedules
from xiaopu.ledger import service as ledger
from xiaopu.models import PayoutBatch, Withdrawal, WithdrawalStatus
from xiaopu.models.ledger import OwnerKind, Purpose
from xiaopu.payouts.service import RUN_JOB

CLAIM_SIZE = 5
# (currency, amounts): the sandbox refuses amounts ending in 13 minor units.
ASKED = {
    "CNY": [1_000, 2_500, 1_113, 4_000, 1_200, 3_313, 1_500, 2_000, 1_700],
    "JPY": [1_000, 1_013, 2_000, 50],
}


def _start_worker(database_url: str, crash_at: str | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": database_url,
        "XIAOPU_JWT_SECRET": TEST_JWT_SECRET,
        "XIAOPU_ATTRIBUTION_SECRET": TEST_ATTRIBUTION_SECRET,
        "XIAOPU_LOG_LEVEL": "ERROR",
        # One payout at a time and small claims: each crash lands at one known payout.
        "XIAOPU_PAYOUT_CONCURRENCY": "1",
        "XIAOPU_PAYOUT_CLAIM_SIZE": str(CLAIM_SIZE),
        # The killed worker is known dead: the next one takes its claims over at once.
        "XIAOPU_PAYOUT_CLAIM_TIMEOUT_SECONDS": "0",
    }
    env.pop("XIAOPU_PAYOUT_CRASH_AT", None)
    if crash_at is not None:
        env["XIAOPU_PAYOUT_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "xiaopu.cli", "worker", "--heartbeat-seconds", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def _state(sessions: async_sessionmaker[AsyncSession]) -> tuple[Counter[str], int]:
    """Withdrawals per status, and keys the provider was asked to pay."""
    async with sessions() as session:
        statuses = Counter(str(s) for s in (await session.scalars(select(Withdrawal.status))))
        keys = await session.scalar(text("SELECT count(*) FROM sandbox_payouts"))
    return statuses, int(keys or 0)


async def _keeper(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], currency: str
) -> tuple[Actor, uuid.UUID]:
    keeper = await new_actor(client)
    shop_id = uuid.UUID((await open_shop(client, keeper.headers))["id"])
    async with sessions() as session:
        await fund(session, shop_id, 100_000, currency)
        await session.commit()
    return keeper, shop_id


@pytest.mark.concurrent
async def test_sigkilled_payout_worker_pays_each_withdrawal_once(
    concurrent_client: httpx.AsyncClient, fresh_db_url: str
) -> None:
    client = concurrent_client
    engine = create_engine(make_settings(fresh_db_url))
    sessions = create_sessionmaker(engine)
    try:
        keepers = {currency: await _keeper(client, sessions, currency) for currency in ASKED}
        asked: dict[uuid.UUID, tuple[uuid.UUID, str, int]] = {}
        for currency, amounts in ASKED.items():
            keeper, shop_id = keepers[currency]
            for amount in amounts:
                response = await client.post(
                    "/v1/shops/mine/withdrawals",
                    json={"amount_minor": amount, "currency": currency},
                    headers={**keeper.headers, **key()},
                )
                assert response.status_code == 201, response.text
                asked[uuid.UUID(response.json()["id"])] = (shop_id, currency, amount)
        op = await new_actor(client)
        async with sessions() as session:
            await make_operator(session, op.account_id)
            # The payout schedule's next run a day away, so no scheduled run joins the one
            # queued below and every death lands where it is expected.
            (schedule,) = [s for s in schedules() if s.name == RUN_JOB]
            await session.execute(
                text(
                    "INSERT INTO pgqueuer_schedules (expression, entrypoint, next_run) "
                    "VALUES (:cron, :job, now() + interval '1 day')"
                ),
                {"cron": schedule.cron, "job": RUN_JOB},
            )
            await session.commit()
        queued = await client.post("/v1/operator/payouts/run", headers={**op.headers, **key()})
        assert queued.status_code == 202, queued.text

        # Each worker dies at its step; the next one picks the dead one's job up again.
        # Expected after each death: (requested, processing, settled, keys at the provider).
        waiting = len(asked) - CLAIM_SIZE
        expected = {
            "claimed": (waiting, CLAIM_SIZE, 0, 0),  # claimed and committed, nothing asked
            "called": (waiting, CLAIM_SIZE, 0, 1),  # the provider paid a claim; no record
            # the next run looked that key up (not paid again) and recorded it
            "recorded": (waiting, CLAIM_SIZE - 1, 1, 1),
        }
        for step, after_death in expected.items():
            worker = _start_worker(fresh_db_url, step)
            assert await asyncio.to_thread(worker.wait, 60) == -signal.SIGKILL, step
            seen, at_provider = await _state(sessions)
            settled = seen["paid"] + seen["failed"]
            assert (seen["requested"], seen["processing"], settled, at_provider) == after_death

        worker = _start_worker(fresh_db_url, None)
        try:
            for _ in range(600):
                async with sessions() as session:
                    left = await session.scalar(
                        text(
                            "SELECT (SELECT count(*) FROM pgqueuer) + (SELECT count(*) FROM "
                            "withdrawals WHERE status IN ('requested', 'processing'))"
                        )
                    )
                if left == 0:
                    break
                await asyncio.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.wait, 20) == 0

        async with sessions() as session:
            withdrawals = {w.id: w for w in await session.scalars(select(Withdrawal))}
            books = (
                await session.execute(
                    text(
                        "SELECT key, payee_id, amount_minor, currency, succeeded "
                        "FROM sandbox_payouts"
                    )
                )
            ).all()
            events = Counter(
                (str(kind), str(withdrawal_id))
                for kind, withdrawal_id in await session.execute(
                    text(
                        "SELECT type, data->>'withdrawal_id' FROM events "
                        "WHERE type IN ('payout.paid', 'payout.failed')"
                    )
                )
            )
            batches = (await session.scalars(select(PayoutBatch))).all()
            unbalanced = await ledger.reconcile(session)
            withdrawing = {
                currency: (await ledger.balances(session, OwnerKind.shop, shop_id))[currency].get(
                    Purpose.earnings_withdrawing, 0
                )
                for currency, (_, shop_id) in keepers.items()
            }
    finally:
        await engine.dispose()

    # The provider was asked once per withdrawal (its first attempt), never twice.
    assert sorted(k for k, *_ in books) == sorted(f"withdrawal:{i}:0" for i in asked)
    for k, payee_id, amount, currency, succeeded in books:
        withdrawal_id = uuid.UUID(k.split(":")[1])
        assert asked[withdrawal_id] == (payee_id, currency, amount)
        assert succeeded is (amount % 100 != 13)
        w = withdrawals[withdrawal_id]
        assert w.status is (WithdrawalStatus.paid if succeeded else WithdrawalStatus.failed)
        assert (w.attempts, w.payout_key) == (1, k)
    # What we record as paid is what the provider paid, shop by shop.
    provider_paid: Counter[tuple[uuid.UUID, str]] = Counter()
    for _, payee_id, amount, currency, succeeded in books:
        if succeeded:
            provider_paid[(payee_id, currency)] += amount
    we_paid: Counter[tuple[uuid.UUID, str]] = Counter()
    for w in withdrawals.values():
        if w.status is WithdrawalStatus.paid:
            we_paid[(w.shop_id, w.currency)] += w.amount_minor
    assert we_paid == provider_paid
    assert withdrawing == {"CNY": 0, "JPY": 0}
    assert unbalanced == 0
    # One event per withdrawal, of the kind its outcome was.
    assert sorted(events) == sorted(
        ("payout.paid" if a % 100 != 13 else "payout.failed", str(i))
        for i, (_, _, a) in asked.items()
    )
    assert all(n == 1 for n in events.values())
    assert sum(b.item_count for b in batches) == len(asked)
    assert all(b.completed_at is not None for b in batches)
    assert sum(b.paid_count + b.failed_count for b in batches) == len(asked)
