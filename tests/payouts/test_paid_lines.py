"""A commission line becomes `paid` once payouts cover it (oldest first, whole lines only)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.helpers import checkout, market, pay, run_schedule, supplier_act
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.models import Commission
from xiaopu.models.ledger import Beneficiary
from xiaopu.payouts import service as payouts
from xiaopu.payouts.schemas import WithdrawalIn


async def test_payouts_mark_the_oldest_covered_lines_paid(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    m = await market(client, session, price=30_000, commission_bps=1000, markup_bps=500)
    supply = m.suppliers[0]
    order = await checkout(client, m.slug, [(m.variant, 1)])
    await pay(client, order)
    (part,) = order["supplier_orders"]
    await supplier_act(
        client, supply, part["id"], "ship", {"carrier": "SF", "tracking_number": "SF0009"}
    )
    test_clock.freeze(test_clock.now())
    await supplier_act(client, supply, part["id"], "deliver")
    test_clock.advance(timedelta(days=8))
    await run_schedule(session, settings, "orders.complete")

    keeper = uuid.UUID(m.keeper.account_id)
    (wallet,) = await payouts.wallet(session, keeper)
    assert wallet.available_minor == 4_500  # commission 3,000 + markup 1,500

    async def lines() -> dict[str, str]:
        rows = await session.scalars(
            select(Commission)
            .where(Commission.order_id == uuid.UUID(order["id"]))
            .where(Commission.beneficiary == Beneficiary.shop)
            .execution_options(populate_existing=True)
        )
        return {str(r.kind): str(r.status) for r in rows}

    await payouts.request_withdrawal(
        session, settings, keeper, WithdrawalIn(amount_minor=3_200, currency="CNY")
    )
    await payouts.run_payouts(sessionmaker, settings)
    # 3,200 covers one line (3,000 or 1,500, whichever is older) but not both.
    assert sorted((await lines()).values()) == ["available", "paid"]
    await payouts.request_withdrawal(
        session, settings, keeper, WithdrawalIn(amount_minor=1_300, currency="CNY")
    )
    await payouts.run_payouts(sessionmaker, settings)
    assert await lines() == {"commission": "paid", "markup": "paid"}
    (wallet,) = await payouts.wallet(session, keeper)
    assert (wallet.available_minor, wallet.paid_minor) == (0, 4_500)
