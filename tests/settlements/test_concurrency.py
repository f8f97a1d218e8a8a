"""Real races: two workers close the same week at once, and two pay its payout at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from tests.orders.conftest import Live
from tests.orders.helpers import market
from tests.settlements.helpers import delivered_order, sandbox_keys, supplier_balance
from xiaopu.jobs import JobContext
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.models.ledger import Purpose
from xiaopu.orders import fulfilment
from xiaopu.settlements import jobs as settlement_jobs
from xiaopu.settlements import service
from xiaopu.settlements.service import CloseResult

pytestmark = pytest.mark.concurrent

MONDAY = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


async def test_two_closes_at_once_freeze_one_statement_and_one_payout_pays_once(
    live: Live, test_clock: Clock
) -> None:
    test_clock.freeze(MONDAY)
    async with live.sessionmaker() as session:
        m = await market(live.client, session, price=10_000, stock=20, return_window_days=1)
    supply = m.suppliers[0]
    for units in (1, 2):
        await delivered_order(live.client, m, units)
    test_clock.advance(timedelta(days=1, seconds=1))
    async with live.sessionmaker() as session, session.begin():
        assert await fulfilment.complete_due(session, live.settings) == 2
    test_clock.freeze(datetime(2026, 12, 6, 16, 10, tzinfo=UTC))

    async def close(in_steps: bool) -> CloseResult:
        if in_steps:  # as the job runs it: a transaction per supplier
            return await service.close_due_in_steps(live.sessionmaker, live.settings)
        async with live.sessionmaker() as session, session.begin():
            return await service.close_due(session, live.settings)

    results = await asyncio.gather(*(close(in_steps=i % 2 == 0) for i in range(4)))
    assert sum(r.settlements for r in results) == 1
    assert all(r.failed_suppliers == 0 for r in results)
    async with live.sessionmaker() as session:
        counts = (
            await session.execute(
                text(
                    "SELECT (SELECT count(*) FROM settlements), "
                    "(SELECT count(*) FROM supplier_payouts), "
                    "(SELECT count(*) FROM ledger_transactions WHERE kind = 'settlement'), "
                    "(SELECT count(*) FROM settlement_closes)"
                )
            )
        ).one()
        assert tuple(counts) == (1, 1, 1, 1)
        assert await supplier_balance(session, supply.id, Purpose.payable) == 0
        assert await supplier_balance(session, supply.id, Purpose.payable_settling) == 3 * 8_500

    async def pay() -> None:
        # As the worker runs an own_transactions job: a session outside any transaction.
        async with live.sessionmaker() as session, httpx.AsyncClient() as http:
            ctx = JobContext(settings=live.settings, http=http, sessionmaker=live.sessionmaker)
            await settlement_jobs.pay(session, ctx, b"")

    await asyncio.gather(pay(), pay())
    async with live.sessionmaker() as session:
        (key,) = await sandbox_keys(session, supply.id)
        assert key.endswith(":1")
        status = await session.scalar(text("SELECT status FROM supplier_payouts"))
        assert status == "paid"
        assert await supplier_balance(session, supply.id, Purpose.payable_settling) == 0
        assert await ledger.reconcile(session) == 0
