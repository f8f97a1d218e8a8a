"""The refund job claims, commits, calls and records: the provider is asked outside any
transaction, a dead worker's claim is taken over once it lapses, and a late record is void."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.conftest import Live
from tests.orders.helpers import checkout, events, market, pay, run_queued, supplier_act
from xiaopu.config import Settings
from xiaopu.jobs import JobContext, entrypoints
from xiaopu.kit.clock import Clock
from xiaopu.models import Refund, RefundStatus
from xiaopu.orders import payments
from xiaopu.orders.payments import REFUND_CLAIM, REFUND_JOB, RefundBeingSent, RefundClaim
from xiaopu.orders.providers import RefundOutcome, SandboxProvider
from xiaopu.worker import run_worker


class Asked:
    """The refund ids the sandbox provider was asked to refund, and what `probe` (if set)
    found while each call was under way."""

    def __init__(self) -> None:
        self.refund_ids: list[uuid.UUID] = []
        self.probe: Callable[[], Awaitable[int]] | None = None
        self.probed: list[int] = []


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Asked:
    seen = Asked()
    real = SandboxProvider.refund

    async def counting(
        self: SandboxProvider, payment_ref: str, refund_id: uuid.UUID, amount: int, currency: str
    ) -> RefundOutcome:
        seen.refund_ids.append(refund_id)
        if seen.probe is not None:
            seen.probed.append(await seen.probe())
        return await real(self, payment_ref, refund_id, amount, currency)

    monkeypatch.setattr(SandboxProvider, "refund", counting)
    return seen


async def _cancelled_paid_order(client: httpx.AsyncClient, session: AsyncSession) -> str:
    """A paid order its supplier cancels: one refund queued. Returns the order id."""
    m = await market(client, session, price=1_000, stock=5)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    await pay(client, order)
    (part,) = order["supplier_orders"]
    cancelled = await supplier_act(client, m.suppliers[0], part["id"], "cancel", {"reason": "x"})
    assert cancelled.status_code == 200, cancelled.text
    return str(order["id"])


async def _refund_of(session: AsyncSession, order_id: str) -> Refund:
    refund = await session.scalar(
        select(Refund)
        .where(Refund.order_id == uuid.UUID(order_id))
        .execution_options(populate_existing=True)
    )
    assert refund is not None
    return refund


async def _claim(sessions: async_sessionmaker[AsyncSession], refund_id: uuid.UUID) -> RefundClaim:
    """A run's first step, committed: what a worker killed right after it leaves behind."""
    async with sessions() as s, s.begin():
        claim = await payments.claim_refund(s, refund_id)
    assert isinstance(claim, RefundClaim)
    return claim


async def test_the_provider_is_asked_outside_any_transaction(live: Live, asked: Asked) -> None:
    async with live.sessionmaker() as session:
        order_id = await _cancelled_paid_order(live.client, session)
    async with live.sessionmaker() as session, session.begin():
        (payload,) = (
            await session.execute(
                text("DELETE FROM pgqueuer WHERE entrypoint = :e RETURNING payload"),
                {"e": REFUND_JOB},
            )
        ).one()

    assert live.settings.database_url is not None
    dsn = live.settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def open_transactions() -> int:
        """The database's other sessions inside a transaction now: the job's, if any."""
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                )
            )
        finally:
            await conn.close()

    asked.probe = open_transactions
    entry = entrypoints()[REFUND_JOB]
    assert entry.own_transactions  # the worker opens no transaction around it
    async with httpx.AsyncClient() as http, live.sessionmaker() as job_session:
        ctx = JobContext(settings=live.settings, http=http, sessionmaker=live.sessionmaker)
        await entry.handler(job_session, ctx, bytes(payload))

    assert asked.probed == [0]  # the claim committed before the call, the record after it
    async with live.sessionmaker() as session:
        refund = await _refund_of(session, order_id)
        assert refund.status is RefundStatus.succeeded
        assert refund.claimed_at is None
        assert asked.refund_ids == [refund.id]
        assert len(await events(session, "refund.succeeded")) == 1


async def test_a_dead_workers_claim_is_taken_over_once_it_lapses(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
    asked: Asked,
) -> None:
    order_id = await _cancelled_paid_order(client, session)
    test_clock.freeze()
    refund = await _refund_of(session, order_id)
    # A worker claims the refund, asks the provider, and is killed before it records.
    claim = await _claim(sessionmaker, refund.id)
    await payments.ask_provider(settings, claim)

    # The job, picked up again while the claim is live, leaves it alone and is retried later.
    (payload,) = (
        await session.execute(
            text("SELECT payload FROM pgqueuer WHERE entrypoint = :e"), {"e": REFUND_JOB}
        )
    ).one()
    async with httpx.AsyncClient() as http:
        ctx = JobContext(settings=settings, http=http, sessionmaker=sessionmaker)
        with pytest.raises(RefundBeingSent):
            await entrypoints()[REFUND_JOB].handler(session, ctx, bytes(payload))
    assert asked.refund_ids == [refund.id]
    assert (await _refund_of(session, order_id)).claimed_at == claim.claimed_at

    test_clock.advance(REFUND_CLAIM + timedelta(seconds=1))
    assert await run_queued(session, settings) == 1
    refund = await _refund_of(session, order_id)
    assert refund.status is RefundStatus.succeeded
    assert refund.claimed_at is None
    assert refund.provider_ref == f"sbx_re_{refund.id.hex}"
    # Asked again under the same refund id, which the provider refunds once.
    assert Counter(asked.refund_ids) == {refund.id: 2}
    (succeeded,) = await events(session, "refund.succeeded")
    assert succeeded["refund_id"] == str(refund.id)
    assert await events(session, "refund.failed") == []


async def test_a_late_runners_record_records_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
    asked: Asked,
) -> None:
    order_id = await _cancelled_paid_order(client, session)
    test_clock.freeze()
    refund_id = (await _refund_of(session, order_id)).id
    slow = await _claim(sessionmaker, refund_id)
    test_clock.advance(REFUND_CLAIM + timedelta(seconds=1))
    taker = await _claim(sessionmaker, refund_id)
    assert taker.taken_over
    assert not slow.taken_over

    refused = RefundOutcome(False, f"sbx_re_{refund_id.hex}", "a stale answer")
    # The slow runner answers while the taker is with the provider: the claim is not its own.
    async with sessionmaker() as s, s.begin():
        assert not await payments.record_refund(s, slow, refused)
    assert (await _refund_of(session, order_id)).claimed_at == taker.claimed_at

    async with sessionmaker() as s, s.begin():
        assert await payments.record_refund(s, taker, await payments.ask_provider(settings, taker))
    # ... and once more after the taker recorded.
    async with sessionmaker() as s, s.begin():
        assert not await payments.record_refund(s, slow, refused)

    refund = await _refund_of(session, order_id)
    assert refund.status is RefundStatus.succeeded
    assert refund.failure_reason is None
    assert len(await events(session, "refund.succeeded")) == 1
    assert await events(session, "refund.failed") == []
    assert asked.refund_ids == [refund_id]


async def test_a_provider_error_releases_the_claim_for_the_next_run(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    asked: Asked,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order_id = await _cancelled_paid_order(client, session)
    refund_id = (await _refund_of(session, order_id)).id

    async def unreachable(*_: object) -> RefundOutcome:
        raise ConnectionError("the provider timed out")

    with monkeypatch.context() as patched:
        patched.setattr(SandboxProvider, "refund", unreachable)
        with pytest.raises(ConnectionError):
            await payments.send_refund_in_steps(sessionmaker, settings, refund_id)
    refund = await _refund_of(session, order_id)
    assert refund.status is RefundStatus.pending
    assert refund.claimed_at is None  # the job's retry need not wait for a lease

    assert await payments.send_refund_in_steps(sessionmaker, settings, refund_id) == "succeeded"
    assert asked.refund_ids == [refund_id]
    assert len(await events(session, "refund.succeeded")) == 1


@pytest.mark.concurrent
async def test_the_worker_sends_a_queued_refund(live: Live, asked: Asked) -> None:
    async with live.sessionmaker() as session:
        order_id = await _cancelled_paid_order(live.client, session)
    await asyncio.wait_for(run_worker(live.settings, drain=True), timeout=60)
    async with live.sessionmaker() as session:
        refund = await _refund_of(session, order_id)
        assert refund.status is RefundStatus.succeeded
        assert asked.refund_ids == [refund.id]
        (succeeded,) = await events(session, "refund.succeeded")
        assert succeeded["status"] == "succeeded"
        left = await session.scalar(
            text("SELECT count(*) FROM pgqueuer WHERE entrypoint = :e"), {"e": REFUND_JOB}
        )
        assert left == 0
