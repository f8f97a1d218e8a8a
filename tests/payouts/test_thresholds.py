"""Payout thresholds are per currency: ten major units by default, overridable per currency."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import assert_problem
from tests.catalogue.helpers import Actor
from tests.conftest import make_settings
from tests.orders.helpers import key
from tests.payouts.helpers import shop_with_available
from xiaopu.app import create_app
from xiaopu.config import Settings


async def _withdraw(
    client: httpx.AsyncClient, keeper: Actor, amount: int, currency: str
) -> httpx.Response:
    return await client.post(
        "/v1/shops/mine/withdrawals",
        json={"amount_minor": amount, "currency": currency},
        headers={**keeper.headers, **key()},
    )


async def test_cny_threshold_is_ten_yuan_and_says_so(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper, _ = await shop_with_available(client, session, 5_000, "CNY")
    body = assert_problem(
        await _withdraw(client, keeper, 999, "CNY"), 422, "below_payout_threshold"
    )
    assert body["detail"] == "The smallest withdrawal is ¥10.00."
    assert (body["threshold_minor"], body["currency"]) == (1_000, "CNY")
    short = assert_problem(await _withdraw(client, keeper, 5_001, "CNY"), 409, "insufficient_funds")
    assert short["detail"] == "¥50.00 is available."
    assert short["available_minor"] == 5_000
    assert (await _withdraw(client, keeper, 1_000, "CNY")).status_code == 201


async def test_jpy_threshold_is_ten_yen_not_a_thousand(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper, _ = await shop_with_available(client, session, 5_000, "JPY")
    body = assert_problem(await _withdraw(client, keeper, 9, "JPY"), 422, "below_payout_threshold")
    assert body["detail"] == "The smallest withdrawal is 10 JPY."
    assert (body["threshold_minor"], body["currency"]) == (10, "JPY")
    short = assert_problem(await _withdraw(client, keeper, 5_001, "JPY"), 409, "insufficient_funds")
    assert short["detail"] == "5000 JPY is available."
    # ¥9.99 would be refused in CNY; 999 yen is well above JPY's threshold.
    assert (await _withdraw(client, keeper, 999, "JPY")).status_code == 201


async def test_a_currency_threshold_can_be_overridden(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    overridden = make_settings(settings.database_url or "", payout_thresholds_minor={"JPY": 1_000})
    app = create_app(overridden, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        keeper, _ = await shop_with_available(client, session, 5_000, "JPY")
        body = assert_problem(
            await _withdraw(client, keeper, 999, "JPY"), 422, "below_payout_threshold"
        )
        assert body["detail"] == "The smallest withdrawal is 1000 JPY."
        assert body["threshold_minor"] == 1_000
        assert (await _withdraw(client, keeper, 1_000, "JPY")).status_code == 201
        # Currencies it does not name keep the default.
        cny_keeper, _ = await shop_with_available(client, session, 5_000, "CNY")
        cny = assert_problem(
            await _withdraw(client, cny_keeper, 999, "CNY"), 422, "below_payout_threshold"
        )
        assert cny["threshold_minor"] == 1_000
