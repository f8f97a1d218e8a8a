"""Withdrawals: the threshold, the available balance, negative carry, batches, failure, retry."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import assert_problem
from tests.catalogue.helpers import Actor, operator
from tests.orders.helpers import events, key
from tests.payouts.helpers import batches_of, run_queued_payouts, sandbox_keys, shop_with_available
from xiaopu.config import Settings
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models.ledger import PLATFORM_ID, OwnerKind, Purpose
from xiaopu.payouts import service as payouts


async def _wallet(client: httpx.AsyncClient, keeper: Actor) -> dict[str, Any]:
    response = await client.get("/v1/shops/mine/wallet", headers=keeper.headers)
    assert response.status_code == 200, response.text
    (cny,) = response.json()
    result: dict[str, Any] = cny
    return result


async def _withdraw(client: httpx.AsyncClient, keeper: Actor, amount: int) -> httpx.Response:
    return await client.post(
        "/v1/shops/mine/withdrawals",
        json={"amount_minor": amount, "currency": "CNY"},
        headers={**keeper.headers, **key()},
    )


async def test_a_withdrawal_is_checked_then_paid_in_a_batch(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    keeper, _ = await shop_with_available(client, session, 5_000)
    assert_problem(await _withdraw(client, keeper, 999), 422, "below_payout_threshold")
    assert_problem(await _withdraw(client, keeper, 5_001), 409, "insufficient_funds")
    no_key = await client.post(
        "/v1/shops/mine/withdrawals",
        json={"amount_minor": 2_000, "currency": "CNY"},
        headers=keeper.headers,
    )
    assert_problem(no_key, 400, "idempotency_key_missing")

    asked = await _withdraw(client, keeper, 2_000)
    assert asked.status_code == 201, asked.text
    assert asked.json()["status"] == "requested"
    wallet = await _wallet(client, keeper)
    assert (wallet["available_minor"], wallet["withdrawing_minor"]) == (3_000, 2_000)

    op = await operator(client, session)
    no_run_key = await client.post("/v1/operator/payouts/run", headers=op.headers)
    assert_problem(no_run_key, 400, "idempotency_key_missing")
    run_key = key()
    run = await client.post("/v1/operator/payouts/run", headers={**op.headers, **run_key})
    assert run.status_code == 202, run.text
    assert run.json() == {
        "job": "payouts.run",
        "queued": [{"currency": "CNY", "status": "requested", "count": 1, "total_minor": 2_000}],
    }
    # A retry with the same key replays the answer and queues no second run (one is run below).
    again = await client.post("/v1/operator/payouts/run", headers={**op.headers, **run_key})
    assert again.status_code == 202, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == run.json()
    # Queued, not paid: the request does not call the provider.
    assert (await _wallet(client, keeper))["withdrawing_minor"] == 2_000
    assert await run_queued_payouts(session, sessionmaker, settings) == 1
    (listed,) = (await client.get("/v1/shops/mine/withdrawals", headers=keeper.headers)).json()[
        "items"
    ]
    assert (listed["status"], listed["attempts"]) == ("paid", 1)
    (batch,) = await batches_of(session, [uuid.UUID(listed["id"])])
    assert (batch.item_count, batch.paid_count, batch.failed_count) == (1, 1, 0)
    assert batch.completed_at is not None
    wallet = await _wallet(client, keeper)
    assert (wallet["available_minor"], wallet["withdrawing_minor"], wallet["paid_minor"]) == (
        3_000,
        0,
        2_000,
    )
    (paid,) = await events(session, "payout.paid")
    assert paid["amount_minor"] == 2_000
    assert await ledger.reconcile(session) == 0


async def test_a_failed_payout_returns_the_funds_and_can_be_retried(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    keeper, _ = await shop_with_available(client, session, 5_000)
    # The sandbox refuses amounts ending in 13 minor units.
    asked = await _withdraw(client, keeper, 1_013)
    withdrawal_id = asked.json()["id"]
    op = await operator(client, session)
    ran = await client.post("/v1/operator/payouts/run", headers={**op.headers, **key()})
    assert ran.status_code == 202
    assert await run_queued_payouts(session, sessionmaker, settings) == 1
    (batch,) = await batches_of(session, [uuid.UUID(withdrawal_id)])
    assert (batch.paid_count, batch.failed_count) == (0, 1)
    listed = (await client.get("/v1/shops/mine/withdrawals", headers=keeper.headers)).json()
    assert listed["items"][0]["status"] == "failed"
    assert listed["items"][0]["failure_reason"]
    wallet = await _wallet(client, keeper)
    assert (wallet["available_minor"], wallet["withdrawing_minor"]) == (5_000, 0)
    assert len(await events(session, "payout.failed")) == 1

    retried = await client.post(
        f"/v1/shops/mine/withdrawals/{withdrawal_id}/retry", headers={**keeper.headers, **key()}
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "requested"
    assert (await _wallet(client, keeper))["available_minor"] == 3_987
    again = await client.post(
        f"/v1/shops/mine/withdrawals/{withdrawal_id}/retry", headers={**keeper.headers, **key()}
    )
    assert_problem(again, 409, "withdrawal_not_retryable")
    # The retry is a new attempt under a new provider key (refused again: the same amount).
    await payouts.run_payouts(sessionmaker, settings)
    listed = (await client.get("/v1/shops/mine/withdrawals", headers=keeper.headers)).json()
    assert (listed["items"][0]["status"], listed["items"][0]["attempts"]) == ("failed", 2)
    keys = await sandbox_keys(session, [uuid.UUID(withdrawal_id)])
    assert keys == {f"withdrawal:{withdrawal_id}:0": False, f"withdrawal:{withdrawal_id}:1": False}
    assert await ledger.reconcile(session) == 0


async def test_a_negative_balance_blocks_withdrawals(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper, shop_id = await shop_with_available(client, session, 1_000)
    await ledger.post(  # a clawback larger than the balance
        session,
        kind="test",
        cause=f"test:{uuid.uuid4()}",
        currency="CNY",
        legs=[
            Leg(OwnerKind.shop, uuid.UUID(shop_id), Purpose.earnings_available, 1_500),
            Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, -1_500),
        ],
    )
    await session.commit()
    wallet = await _wallet(client, keeper)
    assert (wallet["available_minor"], wallet["negative_carry_minor"]) == (0, 500)
    assert_problem(await _withdraw(client, keeper, 1_000), 409, "negative_balance")


async def test_another_shopkeeper_cannot_retry_my_withdrawal(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper, _ = await shop_with_available(client, session, 5_000)
    mine = (await _withdraw(client, keeper, 2_000)).json()
    other, _ = await shop_with_available(client, session, 5_000)
    response = await client.post(
        f"/v1/shops/mine/withdrawals/{mine['id']}/retry", headers={**other.headers, **key()}
    )
    assert_problem(response, 404, "withdrawal_not_found")
    listed = (await client.get("/v1/shops/mine/withdrawals", headers=other.headers)).json()
    assert listed["items"] == []
    not_operator = await client.post(
        "/v1/operator/payouts/run", headers={**keeper.headers, **key()}
    )
    assert not_operator.status_code == 403
