"""A refund the provider refuses stays owed (it blocks completion) until an operator retries it."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import assert_problem
from tests.orders.helpers import checkout, events, key, market, pay, run_queued, supplier_act
from xiaopu.config import Settings
from xiaopu.models import Refund
from xiaopu.orders.providers import CallbackKind, SandboxProvider


async def test_a_refused_refund_is_listed_and_retried(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # The sandbox refuses refunds of amounts ending in 13 minor units: 1,013 = 921 + 10% markup.
    m = await market(client, session, price=921, stock=5)
    supply = m.suppliers[0]
    order = await checkout(client, m.slug, [(m.variant, 1)])
    assert order["total_minor"] == 1_013
    await pay(client, order)
    (part,) = order["supplier_orders"]
    cancelled = await supplier_act(client, supply, part["id"], "cancel", {"reason": "no stock"})
    assert cancelled.status_code == 200, cancelled.text

    assert await run_queued(session, settings) == 1
    failed = await client.get("/v1/operator/refunds?status=failed", headers=m.op.headers)
    (refund,) = failed.json()["items"]
    assert refund["amount_minor"] == 1_013
    assert len(await events(session, "refund.failed")) == 1

    retried = await client.post(
        f"/v1/operator/refunds/{refund['id']}/retry", headers={**m.op.headers, **key()}
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "pending"
    again = await client.post(
        f"/v1/operator/refunds/{refund['id']}/retry", headers={**m.op.headers, **key()}
    )
    assert_problem(again, 409, "refund_not_retryable")
    assert await run_queued(session, settings) == 1  # refused again: the sandbox is consistent
    assert len(await events(session, "refund.failed")) == 2


async def test_a_refunded_callback_confirms_a_refused_refund_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """An asynchronous provider may report later that a refund it first refused went through."""
    m = await market(client, session, price=921, stock=5)
    supply = m.suppliers[0]
    order = await checkout(client, m.slug, [(m.variant, 1)])
    await pay(client, order)
    (part,) = order["supplier_orders"]
    await supplier_act(client, supply, part["id"], "cancel", {"reason": "no stock"})
    await run_queued(session, settings)  # refused: 1,013 ends in 13
    refund = await session.scalar(select(Refund).where(Refund.order_id == uuid.UUID(order["id"])))
    assert refund is not None
    assert refund.status == "failed"
    assert refund.provider_ref is not None
    sandbox = SandboxProvider(settings)

    async def refunded(amount: int) -> httpx.Response:
        callback = sandbox.new_callback(
            CallbackKind.refunded,
            payment_ref=order["payment"]["provider_ref"],
            refund_ref=refund.provider_ref,
            amount_minor=amount,
            currency="CNY",
        )
        headers, body = sandbox.sign_callback(callback)
        return await client.post("/v1/payments/sandbox/callbacks", content=body, headers=headers)

    assert_problem(await refunded(1_000), 422, "payment_mismatch")
    confirmed = await refunded(1_013)
    assert confirmed.json() == {"outcome": "refund_confirmed"}
    assert (await refunded(1_013)).json() == {"outcome": "already_refunded"}
    assert len(await events(session, "refund.succeeded")) == 1
