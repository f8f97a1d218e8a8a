"""Delivery attempts are counted by outcome for the worker's metrics."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import supplier
from tests.webhooks.helpers import attempt, deliveries, emit, new_endpoint
from tests.webhooks.receiver import Receiver

OUTCOMES = ("succeeded", "retrying", "failed", "gone", "cancelled")


def _counts() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value("xiaopu_webhook_deliveries_total", {"outcome": outcome})
        or 0.0
        for outcome in OUTCOMES
    }


async def test_each_attempt_is_counted_by_its_outcome(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    await new_endpoint(client, supplier_id, owner, url=hook.url)
    hook.script = [500, 204, 410]
    before = _counts()

    (first,) = await deliveries(session, event_id=(await emit(session, supplier_id)).id)
    await attempt(session, http, first.id, 1)  # 500: another attempt is scheduled
    await attempt(session, http, first.id, 2)  # 204
    (second,) = await deliveries(session, event_id=(await emit(session, supplier_id)).id)
    await attempt(session, http, second.id, 1)  # 410: the endpoint is disabled

    after = _counts()
    assert {o: after[o] - before[o] for o in OUTCOMES} == {
        "succeeded": 1,
        "retrying": 1,
        "failed": 0,
        "gone": 1,
        "cancelled": 0,
    }
    assert len(hook.requests) == 3
