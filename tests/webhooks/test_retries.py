"""The retry schedule, failure handling and disabling, driven by the clock (no sleeping)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import supplier
from tests.webhooks.helpers import (
    SCHEDULE,
    attempt,
    attempts,
    deliveries,
    emit,
    endpoint_row,
    endpoints_url,
    new_endpoint,
    queued_jobs,
    the_delivery,
)
from tests.webhooks.receiver import Receiver
from xiaopu.kit.clock import Clock
from xiaopu.models import DeliveryStatus, EndpointStatus


async def test_failures_follow_the_schedule_then_the_delivery_fails(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    hook: Receiver,
    test_clock: Clock,
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])
    (job,) = await queued_jobs(session, delivery.id)
    assert (job.attempt, job.delay) == (1, timedelta(0))
    hook.script = [500] * 8
    now = start = test_clock.freeze()

    for n in range(1, 9):
        record = await attempt(session, http, delivery.id, n)
        assert record is not None
        assert (record.status_code, record.succeeded, record.error) == (500, False, None)
        assert record.attempted_at == now
        assert record.response_snippet == "ok"
        assert record.latency_ms >= 0
        delivery = await the_delivery(session, endpoint["id"])
        assert delivery.attempts == n
        assert delivery.last_attempt_at == now
        jobs = await queued_jobs(session, delivery.id)
        if n == 8:
            break
        assert delivery.status is DeliveryStatus.pending
        assert delivery.next_attempt_at is not None
        delay = delivery.next_attempt_at - now
        assert SCHEDULE[n] * 0.9 <= delay <= SCHEDULE[n] * 1.1, (n, delay)
        assert [j.attempt for j in jobs] == list(range(1, n + 2))
        assert abs(jobs[-1].delay - delay) < timedelta(milliseconds=1)
        now = test_clock.advance(delay)

    assert delivery.status is DeliveryStatus.failed
    assert delivery.next_attempt_at is None
    assert max(j.attempt for j in jobs) == 8
    assert len(hook.requests) == 8
    assert len(await attempts(session, delivery.id)) == 8
    # About 27.5 hours of failures: not yet the 5 days that disable an endpoint.
    row = await endpoint_row(session, endpoint["id"])
    assert row.status is EndpointStatus.enabled
    assert row.failing_since == start

    test_clock.reset()  # the owner's access token is long expired on the moved clock
    listed = await client.get(
        f"{endpoints_url(supplier_id)}/{endpoint['id']}/attempts",
        params={"limit": 100},
        headers=owner,
    )
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == 8
    assert {(a["status_code"], a["succeeded"]) for a in items} == {(500, False)}
    assert all(a["delivery_id"] == str(delivery.id) for a in items)
    assert all(a["response_snippet"] == "ok" and a["latency_ms"] >= 0 for a in items)


async def test_a_success_ends_the_delivery_and_resets_failing_since(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    hook: Receiver,
    test_clock: Clock,
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])
    hook.script = [500, 200]
    start = test_clock.freeze()

    await attempt(session, http, delivery.id, 1)
    assert (await endpoint_row(session, endpoint["id"])).failing_since == start
    got = await client.get(f"{endpoints_url(supplier_id)}/{endpoint['id']}", headers=owner)
    assert got.json()["failing_since"] is not None

    test_clock.advance(timedelta(seconds=5))
    record = await attempt(session, http, delivery.id, 2)

    assert record is not None
    assert (record.status_code, record.succeeded) == (200, True)
    delivery = await the_delivery(session, endpoint["id"])
    assert delivery.status is DeliveryStatus.succeeded
    assert delivery.next_attempt_at is None
    assert [j.attempt for j in await queued_jobs(session, delivery.id)] == [1, 2]
    assert (await endpoint_row(session, endpoint["id"])).failing_since is None


async def test_a_redirect_is_a_failure_and_is_not_followed(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])
    hook.script = [302]

    record = await attempt(session, http, delivery.id, 1)

    assert record is not None
    assert (record.status_code, record.succeeded, record.error) == (302, False, None)
    assert len(hook.requests) == 1
    delivery = await the_delivery(session, endpoint["id"])
    assert delivery.status is DeliveryStatus.pending
    assert [j.attempt for j in await queued_jobs(session, delivery.id)] == [1, 2]


async def test_a_redirect_is_not_followed_even_by_a_client_that_would(
    client: httpx.AsyncClient, session: AsyncSession, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])
    hook.script = [307]

    async with httpx.AsyncClient(follow_redirects=True) as following:
        record = await attempt(session, following, delivery.id, 1)

    assert record is not None
    assert record.status_code == 307
    assert len(hook.requests) == 1


async def test_410_disables_the_endpoint_and_cancels_its_pending_deliveries(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    bystander = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id, {"n": 1})
    await emit(session, supplier_id, {"n": 2})
    gone, waiting = await deliveries(session, endpoint_id=endpoint["id"])
    hook.script = [410]

    record = await attempt(session, http, gone.id, 1)

    assert record is not None
    assert (record.status_code, record.succeeded) == (410, False)
    row = await endpoint_row(session, endpoint["id"])
    assert row.status is EndpointStatus.disabled
    assert row.disabled_reason is not None
    assert "410" in row.disabled_reason
    gone, waiting = await deliveries(session, endpoint_id=endpoint["id"])
    assert (gone.status, gone.next_attempt_at) == (DeliveryStatus.cancelled, None)
    assert (waiting.status, waiting.next_attempt_at) == (DeliveryStatus.cancelled, None)
    assert [j.attempt for j in await queued_jobs(session, gone.id)] == [1]
    # The cancelled delivery's queued job does nothing; other endpoints are untouched.
    assert await attempt(session, http, waiting.id, 1) is None
    assert len(hook.requests) == 1
    assert {d.status for d in await deliveries(session, endpoint_id=bystander["id"])} == {
        DeliveryStatus.pending
    }
    got = await client.get(f"{endpoints_url(supplier_id)}/{endpoint['id']}", headers=owner)
    assert (got.json()["status"], got.json()["disabled_reason"]) == (
        "disabled",
        row.disabled_reason,
    )


async def test_an_endpoint_failing_for_5_days_straight_is_disabled(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    hook: Receiver,
    test_clock: Clock,
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    hook.script = [500] * 10
    start = test_clock.freeze()

    # A new delivery every day, each failing its first attempt.
    for day in range(5):
        await emit(session, supplier_id, {"day": day})
        latest = (await deliveries(session, endpoint_id=endpoint["id"]))[-1]
        await attempt(session, http, latest.id, 1)
        row = await endpoint_row(session, endpoint["id"])
        assert row.status is EndpointStatus.enabled, day
        assert row.failing_since == start
        test_clock.advance(timedelta(days=1))

    # 4 days 23:59:59 after the first failure, a retry of the first delivery still goes out.
    first = (await deliveries(session, endpoint_id=endpoint["id"]))[0]
    test_clock.freeze(start + timedelta(days=5) - timedelta(seconds=1))
    await attempt(session, http, first.id, 2)
    assert (await endpoint_row(session, endpoint["id"])).status is EndpointStatus.enabled

    test_clock.freeze(start + timedelta(days=5))
    await emit(session, supplier_id, {"day": 5})
    last = (await deliveries(session, endpoint_id=endpoint["id"]))[-1]
    await attempt(session, http, last.id, 1)

    row = await endpoint_row(session, endpoint["id"])
    assert row.status is EndpointStatus.disabled
    assert row.disabled_reason is not None
    assert "5 days" in row.disabled_reason
    statuses = [d.status for d in await deliveries(session, endpoint_id=endpoint["id"])]
    assert statuses == [DeliveryStatus.cancelled] * 5 + [DeliveryStatus.failed]
    assert [j.attempt for j in await queued_jobs(session, last.id)] == [1]
    assert len(hook.requests) == 7


async def test_a_success_in_between_restarts_the_5_day_count(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    hook: Receiver,
    test_clock: Clock,
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    hook.script = [500, 204, 500]
    start = test_clock.freeze()
    for _ in range(2):
        await emit(session, supplier_id)
        await attempt(
            session, http, (await deliveries(session, endpoint_id=endpoint["id"]))[-1].id, 1
        )
        test_clock.advance(timedelta(days=3))
    await emit(session, supplier_id)
    await attempt(session, http, (await deliveries(session, endpoint_id=endpoint["id"]))[-1].id, 1)

    row = await endpoint_row(session, endpoint["id"])
    assert row.status is EndpointStatus.enabled
    assert row.failing_since == start + timedelta(days=6)


async def test_running_the_same_attempt_twice_does_nothing_the_second_time(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])
    hook.script = [500]

    assert await attempt(session, http, delivery.id, 1) is not None
    assert await attempt(session, http, delivery.id, 1) is None
    # Nor may an attempt run ahead of its turn.
    assert await attempt(session, http, delivery.id, 3) is None

    assert len(hook.requests) == 1
    assert len(await attempts(session, delivery.id)) == 1
    assert [j.attempt for j in await queued_jobs(session, delivery.id)] == [1, 2]
    assert (await the_delivery(session, endpoint["id"])).attempts == 1


async def test_a_succeeded_delivery_is_not_attempted_again(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])

    assert await attempt(session, http, delivery.id, 1) is not None
    assert await attempt(session, http, delivery.id, 2) is None
    assert len(hook.requests) == 1
    assert [j.attempt for j in await queued_jobs(session, delivery.id)] == [1]
