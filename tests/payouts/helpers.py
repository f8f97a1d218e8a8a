"""Helpers for payout tests: funded shops, the queued payout job, and the provider's books."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.catalogue.helpers import Actor, new_actor, open_shop
from xiaopu.config import Settings
from xiaopu.jobs import JobContext, schedules
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models import PayoutBatch, Withdrawal
from xiaopu.models.ledger import PLATFORM_ID, OwnerKind, Purpose
from xiaopu.payouts.providers import Payee, PayoutOutcome, SandboxPayouts, payout_provider
from xiaopu.payouts.service import RUN_JOB


async def fund(session: AsyncSession, shop_id: uuid.UUID, amount: int, currency: str) -> None:
    """Put `amount` into a shop's available balance, as a completed order would."""
    await ledger.post(
        session,
        kind="test",
        cause=f"test:{uuid.uuid4()}",
        currency=currency,
        legs=[
            Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, amount),
            Leg(OwnerKind.shop, shop_id, Purpose.earnings_available, -amount),
        ],
    )


async def shop_with_available(
    client: httpx.AsyncClient, session: AsyncSession, amount: int, currency: str = "CNY"
) -> tuple[Actor, str]:
    """A shopkeeper whose shop has `amount` of `currency` available."""
    keeper = await new_actor(client)
    shop = await open_shop(client, keeper.headers)
    await fund(session, uuid.UUID(shop["id"]), amount, currency)
    await session.commit()
    return keeper, shop["id"]


async def run_queued_payouts(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> int:
    """The payout job as the worker runs it (outside any transaction, with a sessionmaker),
    once if any run was queued; returns how many were queued."""
    queued = len(
        (
            await session.execute(
                text("DELETE FROM pgqueuer WHERE entrypoint = :e RETURNING id"), {"e": RUN_JOB}
            )
        ).all()
    )
    await session.commit()
    (schedule,) = [s for s in schedules() if s.name == RUN_JOB]
    assert schedule.own_transactions
    if queued:
        async with httpx.AsyncClient() as http, sessionmaker() as job_session:
            ctx = JobContext(settings=settings, http=http, sessionmaker=sessionmaker)
            await schedule.handler(job_session, ctx, b"")
    return queued


async def batches_of(
    session: AsyncSession, withdrawal_ids: Sequence[uuid.UUID]
) -> list[PayoutBatch]:
    """The batches these withdrawals were last claimed in."""
    stmt = (
        select(PayoutBatch)
        .where(
            PayoutBatch.id.in_(select(Withdrawal.batch_id).where(Withdrawal.id.in_(withdrawal_ids)))
        )
        .order_by(PayoutBatch.id)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


async def sandbox_keys(
    session: AsyncSession, withdrawal_ids: Sequence[uuid.UUID]
) -> dict[str, bool]:
    """What the sandbox provider was asked to pay for these withdrawals: key -> succeeded."""
    rows = await session.execute(
        text(
            "SELECT key, succeeded FROM sandbox_payouts "
            "WHERE split_part(key, ':', 2) = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": [str(i) for i in withdrawal_ids]},
    )
    return {row.key: row.succeeded for row in rows}


class Recording:
    """The sandbox, counting what it is asked; it can lose the answer to a pay it made (a
    timeout after the provider paid) or fail before the request leaves."""

    name = "recording"

    def __init__(self, settings: Settings) -> None:
        provider = payout_provider(settings)
        assert isinstance(provider, SandboxPayouts)
        self.inner = provider
        self.paid: list[str] = []
        self.looked_up: list[str] = []
        self.lose_answer_for: set[str] = set()
        self.unreachable_for: set[str] = set()

    async def pay(self, key: str, payee: Payee, amount_minor: int, currency: str) -> PayoutOutcome:
        if key in self.unreachable_for:
            raise ConnectionError("provider unreachable")
        self.paid.append(key)
        outcome = await self.inner.pay(key, payee, amount_minor, currency)
        if key in self.lose_answer_for:
            raise TimeoutError("the answer was lost")
        return outcome

    async def lookup(self, key: str) -> PayoutOutcome | None:
        self.looked_up.append(key)
        return await self.inner.lookup(key)
