"""Refunds after an operator's decision on held self-purchase earnings, and under the `none`
policy: each part gives back what it holds now, wherever the decision put it, and a full
refund leaves every party's accounts where they started."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.commissions.stories import (
    COMMISSION,
    MARKUP,
    SHIPPING,
    UNITS,
    Step,
    Story,
    app_client,
    balances,
    cancel,
    complete,
    deliver,
    forfeit,
    overrule,
    refuse_the_rest,
    release,
    return_one,
    return_the_rest,
    story,
)
from tests.conftest import make_settings
from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.migrate import alembic_config, upgrade
from xiaopu.models.ledger import PLATFORM_ID


async def _run(s: Story, steps: list[Step]) -> None:
    for step in steps:
        await step(s)
    # Everything was refunded: every party's accounts are back where they started.
    for owner in (s.supplier_id, s.shop_id, str(PLATFORM_ID)):
        now = await balances(s.session, [owner])
        moved = {k: v - s.before.get(k, 0) for k, v in now.items() if v != s.before.get(k, 0)}
        assert moved == {}, (owner, moved)
    lines = (
        await s.client.get("/v1/shops/mine/commissions", headers=await s.headers(s.m.keeper.email))
    ).json()["items"]
    assert {c["net_minor"] for c in lines} == {0}
    assert await ledger.reconcile(s.session) == 0


HELD_STORIES: dict[str, list[Step]] = {
    "forfeit, then the supplier cancels": [forfeit, cancel],
    "release, then the supplier cancels": [release, cancel],
    "a partial refund, forfeit, then the rest": [deliver, return_one, forfeit, return_the_rest],
    "forfeit, a partial refund, then the rest": [deliver, forfeit, return_one, return_the_rest],
    "forfeit after completion, then a clawback": [
        deliver,
        refuse_the_rest,
        complete,
        forfeit,
        overrule,
    ],
    "forfeit before completion, then a clawback": [
        deliver,
        refuse_the_rest,
        forfeit,
        complete,
        overrule,
    ],
    "release after completion, then a clawback": [
        deliver,
        refuse_the_rest,
        complete,
        release,
        overrule,
    ],
    "a partial refund, forfeit after completion, then a clawback": [
        deliver,
        return_one,
        refuse_the_rest,
        complete,
        forfeit,
        overrule,
    ],
}


@pytest.mark.parametrize("steps", HELD_STORIES.values(), ids=HELD_STORIES.keys())
async def test_a_held_self_purchase_can_always_be_refunded(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    test_clock: Clock,
    steps: list[Step],
) -> None:
    async for client in app_client(settings, sessionmaker, "hold"):
        await _run(await story(client, session, settings, test_clock), steps)


async def test_a_refund_after_a_forfeit_takes_the_commission_back_from_the_supplier(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    test_clock: Clock,
) -> None:
    async for client in app_client(settings, sessionmaker, "hold"):
        s = await story(client, session, settings, test_clock)
        base, fee = 10_000 * UNITS, 500 * UNITS
        share = base - COMMISSION * UNITS - fee
        await forfeit(s)
        assert await s.balance(s.supplier_id, "payable_pending") == share + SHIPPING + 2_000
        assert await s.balance(str(PLATFORM_ID), "fees_pending") == fee + MARKUP * UNITS
        await deliver(s)
        await return_one(s)
        # One unit back: its commission and markup come back from where the forfeit sent them.
        assert await s.balance(s.supplier_id, "payable_pending") == (share + 2_000) // 2 + SHIPPING
        assert await s.balance(str(PLATFORM_ID), "fees_pending") == (fee + MARKUP * UNITS) // 2
        assert await s.balance(s.shop_id, "earnings_held") == 0
        lines = (await client.get("/v1/shops/mine/commissions", headers=s.m.keeper.headers)).json()[
            "items"
        ]
        assert sorted((c["kind"], c["status"], c["reversed_minor"]) for c in lines) == [
            ("commission", "forfeited", COMMISSION),
            ("markup", "forfeited", MARKUP),
        ]
        assert await ledger.reconcile(session) == 0


NONE_STORIES: dict[str, list[Step]] = {
    "the supplier cancels": [cancel],
    "a partial refund, then the rest": [deliver, return_one, return_the_rest],
    "a clawback after completion": [deliver, refuse_the_rest, complete, overrule],
}


@pytest.mark.parametrize("steps", NONE_STORIES.values(), ids=NONE_STORIES.keys())
async def test_a_self_purchase_under_none_can_always_be_refunded(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    test_clock: Clock,
    steps: list[Step],
) -> None:
    async for client in app_client(settings, sessionmaker, "none"):
        await _run(await story(client, session, settings, test_clock), steps)


@pytest.mark.concurrent
async def test_the_migration_finds_where_earlier_refusals_sent_their_money(
    fresh_db_url: str, test_clock: Clock
) -> None:
    """Holds decided before forfeited_to existed (history said 'forfeitd', and 'released' for
    an operator's release too): going down and up again finds each refusal's stage from its
    posting, and refunds after it still balance."""
    settings = make_settings(fresh_db_url, self_purchase_policy="hold")
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            async for client in app_client(settings, sessionmaker, "hold"):
                before = await story(client, session, settings, test_clock)
                await forfeit(before)
                after = await story(client, session, settings, test_clock)
                await deliver(after)
                await refuse_the_rest(after)
                await complete(after)
                await forfeit(after)
                released = await story(client, session, settings, test_clock)
                await release(released)
            await session.commit()
            old_revision = "3a7d5e0c1b20"
            await session.close()
            await engine.dispose()

            await asyncio.to_thread(
                command.downgrade,
                alembic_config(fresh_db_url, configure_logger=False),
                old_revision,
            )
            conn = await asyncpg.connect(fresh_db_url)
            try:
                actions = {r[0] for r in await conn.fetch("SELECT action FROM commission_events")}
                assert {"forfeitd", "released"} <= actions  # what the old code wrote
            finally:
                await conn.close()
            await asyncio.to_thread(upgrade, fresh_db_url, "head", quiet=True)

            engine = create_engine(settings)
            sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session:
            rows = await session.execute(
                text(
                    "SELECT CAST(supplier_order_id AS text), kind, forfeited_to FROM commissions "
                    "WHERE status = 'forfeited'"
                )
            )
            found = {(p, k, to) for p, k, to in rows}
            assert found == {
                (before.part_id, "commission", "payable_pending"),
                (before.part_id, "markup", "fees_pending"),
                (after.part_id, "commission", "payable"),
                (after.part_id, "markup", "fees"),
            }
            history = await session.execute(
                text(
                    "SELECT c.supplier_order_id, e.action FROM commission_events e "
                    "JOIN commissions c ON c.id = e.commission_id WHERE c.beneficiary = 'shop'"
                )
            )
            actions_by_part: dict[str, set[str]] = {}
            for part, action in history:
                actions_by_part.setdefault(str(part), set()).add(action)
            assert actions_by_part == {
                before.part_id: {"accrued", "forfeited"},
                after.part_id: {"accrued", "forfeited"},
                released.part_id: {"accrued", "held_released"},
            }
            async for client in app_client(settings, sessionmaker, "hold"):
                before.client, before.session = client, session
                after.client, after.session = client, session
                await cancel(before)
                await overrule(after)
            await session.commit()
            assert await ledger.reconcile(session) == 0
    finally:
        await engine.dispose()
