"""Signed deliveries to a real receiver, verified with the standardwebhooks library."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.factories import supplier
from tests.webhooks.helpers import (
    CREATED,
    assert_problem,
    attempt,
    attempts,
    count,
    deliveries,
    emit,
    endpoints_url,
    new_endpoint,
    queued_jobs,
    the_delivery,
)
from tests.webhooks.receiver import Receiver, receiver
from xiaopu.kit.clock import Clock
from xiaopu.models import DeliveryStatus
from xiaopu.webhooks import sender
from xiaopu.webhooks.service import PayloadTooLargeForWebhook


def signatures(headers: dict[str, str]) -> list[str]:
    return headers["webhook-signature"].split(" ")


async def test_a_delivery_is_signed_and_verifies_with_the_secret(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    event = await emit(session, supplier_id, {"order": "SO-1", "items": [1, 2], "name": "茶"})
    delivery = await the_delivery(session, endpoint["id"])

    record = await attempt(session, http, delivery.id, 1)

    assert record is not None
    assert (record.status_code, record.succeeded, record.error) == (204, True, None)
    (received,) = hook.requests
    assert received.path == "/hook"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == f"msg_{event.id.hex}"
    assert abs(int(received.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 5
    assert len(signatures(received.headers)) == 1
    payload = Webhook(endpoint["secret"]).verify(received.body, received.headers)
    assert payload == {
        "type": CREATED,
        "timestamp": event.created_at.isoformat(),
        "data": {"order": "SO-1", "items": [1, 2], "name": "茶"},
    }
    assert json.loads(received.body) == payload


async def test_a_wrong_secret_or_a_changed_body_fails_verification(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    other = await new_endpoint(client, supplier_id, owner, url="https://x.example.com/")
    await emit(session, supplier_id, {"amount": 100})
    await attempt(session, http, (await the_delivery(session, endpoint["id"])).id, 1)
    (received,) = hook.requests

    with pytest.raises(WebhookVerificationError):
        Webhook(other["secret"]).verify(received.body, received.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(received.body.replace(b"100", b"999"), received.headers)
    forged = {**received.headers, "webhook-id": "msg_forged"}
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(received.body, forged)


async def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    hook: Receiver,
    test_clock: Clock,
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    old = endpoint["secret"]
    rotated = await client.post(
        f"{endpoints_url(supplier_id)}/{endpoint['id']}/rotate-secret",
        json={"overlap_seconds": 120},
        headers=owner,
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]

    await emit(session, supplier_id, {"n": 1})
    (first,) = await deliveries(session, endpoint_id=endpoint["id"])
    await attempt(session, http, first.id, 1)
    (during,) = hook.requests
    assert len(signatures(during.headers)) == 2
    assert Webhook(old).verify(during.body, during.headers)["data"] == {"n": 1}
    assert Webhook(new).verify(during.body, during.headers)["data"] == {"n": 1}

    # Past previous_secret_expires_at (and still within the receiver's 5-minute tolerance).
    test_clock.advance(timedelta(seconds=121))
    await emit(session, supplier_id, {"n": 2})
    _, second = await deliveries(session, endpoint_id=endpoint["id"])
    await attempt(session, http, second.id, 1)
    _, after = hook.requests
    assert len(signatures(after.headers)) == 1
    assert Webhook(new).verify(after.body, after.headers)["data"] == {"n": 2}
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


@pytest.mark.parametrize("skew", [timedelta(minutes=6), timedelta(minutes=-6)])
async def test_a_timestamp_outside_five_minutes_fails_verification(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    hook: Receiver,
    test_clock: Clock,
    skew: timedelta,
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])

    test_clock.advance(skew)
    await attempt(session, http, delivery.id, 1)

    (received,) = hook.requests
    stamp = int(received.headers["webhook-timestamp"])
    assert abs(stamp - (datetime.now(UTC) + skew).timestamp()) < 5
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(received.body, received.headers)


async def test_retries_carry_the_same_webhook_id_and_body_with_a_fresh_timestamp(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    hook: Receiver,
    test_clock: Clock,
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id, {"k": "v"})
    delivery = await the_delivery(session, endpoint["id"])
    hook.script = [500]

    await attempt(session, http, delivery.id, 1)
    test_clock.advance(timedelta(seconds=5))
    await attempt(session, http, delivery.id, 2)

    first, second = hook.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) >= 4
    for received in (first, second):
        Webhook(endpoint["secret"]).verify(received.body, received.headers)


# The payload: {"type", "timestamp", "data"}, at most 20 kB (bytes, not characters).


async def test_emit_refuses_a_payload_over_20_kb(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    supplier_id, owner = await supplier(client)
    await new_endpoint(client, supplier_id, owner)
    at = test_clock.freeze(datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC))
    overhead = len(sender.payload(CREATED, at, {"text": ""}).encode())
    events_before = await count(session, "events")

    exactly = "茶" * ((20_000 - overhead) // 3) + "a" * ((20_000 - overhead) % 3)
    assert len(sender.payload(CREATED, at, {"text": exactly}).encode()) == 20_000
    await emit(session, supplier_id, {"text": exactly})
    assert await count(session, "events") == events_before + 1

    with pytest.raises(PayloadTooLargeForWebhook):
        await emit(session, supplier_id, {"text": exactly + "a"})
    # Under 20,000 characters, but over 20,000 bytes.
    with pytest.raises(PayloadTooLargeForWebhook):
        await emit(session, supplier_id, {"text": "茶" * 7_000})
    assert await count(session, "events") == events_before + 1
    assert await count(session, "webhook_deliveries") == 1


# What the receiver answers: kept, but only its head; a slow receiver times out.


async def test_only_the_first_1000_characters_of_the_answer_are_kept(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url="http://127.0.0.1:9/hook")
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "127.0.0.1"
        return httpx.Response(200, text="x" * 50_000)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mocked:
        record = await attempt(session, mocked, delivery.id, 1)

    assert record is not None
    assert record.status_code == 200
    assert record.response_snippet == "x" * 1000


async def test_a_binary_answer_is_recorded(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url="http://127.0.0.1:9/hook")
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok\x00\x01\x02", headers={"content-type": "a/b"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mocked:
        record = await attempt(session, mocked, delivery.id, 1)

    assert record is not None
    assert record.status_code == 200
    assert (await the_delivery(session, endpoint["id"])).status is DeliveryStatus.succeeded


async def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sender, "TIMEOUT_SECONDS", 0.3)
    supplier_id, owner = await supplier(client)
    with receiver() as slow:
        slow.delay_seconds = 1.0
        endpoint = await new_endpoint(client, supplier_id, owner, url=slow.url)
        await emit(session, supplier_id)
        delivery = await the_delivery(session, endpoint["id"])
        record = await attempt(session, http, delivery.id, 1)

    assert record is not None
    assert (record.status_code, record.succeeded, record.error) == (None, False, "timed out")
    assert 250 <= record.latency_ms < 1000
    delivery = await the_delivery(session, endpoint["id"])
    assert delivery.status is DeliveryStatus.pending
    assert delivery.attempts == 1
    assert len(await attempts(session, delivery.id)) == 1


# Replay.


async def test_replay_delivers_again_with_the_same_webhook_id(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    event = await emit(session, supplier_id, {"id": "k1"})
    original = await the_delivery(session, endpoint["id"])
    await attempt(session, http, original.id, 1)

    response = await client.post(
        f"/v1/suppliers/{supplier_id}/events/{event.id}/replay", json={}, headers=owner
    )

    assert response.status_code == 202, response.text
    (replayed,) = response.json()
    assert replayed["id"] != str(original.id)
    assert replayed["event_id"] == str(event.id)
    assert replayed["endpoint_id"] == endpoint["id"]
    assert (replayed["status"], replayed["attempts"]) == ("pending", 0)
    (job,) = [j for j in await queued_jobs(session) if str(j.delivery_id) == replayed["id"]]
    assert (job.attempt, job.delay) == (1, timedelta(0))

    await attempt(session, http, uuid.UUID(replayed["id"]), 1)
    first, again = hook.requests
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == f"msg_{event.id.hex}"
    assert Webhook(endpoint["secret"]).verify(again.body, again.headers)["data"] == {"id": "k1"}


async def test_replay_goes_to_every_subscribed_endpoint_or_the_one_named(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    first = await new_endpoint(client, supplier_id, owner)
    second = await new_endpoint(client, supplier_id, owner)
    event = await emit(session, supplier_id)
    url = f"/v1/suppliers/{supplier_id}/events/{event.id}/replay"

    everyone = await client.post(url, json={}, headers=owner)
    assert everyone.status_code == 202, everyone.text
    assert {d["endpoint_id"] for d in everyone.json()} == {first["id"], second["id"]}

    one = await client.post(url, json={"endpoint_id": second["id"]}, headers=owner)
    assert one.status_code == 202, one.text
    assert [d["endpoint_id"] for d in one.json()] == [second["id"]]
    assert await count(session, "webhook_deliveries") == 2 + 2 + 1


async def test_replay_of_an_unknown_event_or_endpoint_is_404(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    await new_endpoint(client, supplier_id, owner)
    event = await emit(session, supplier_id)
    base = f"/v1/suppliers/{supplier_id}/events"

    unknown_event = await client.post(f"{base}/{uuid.uuid4()}/replay", json={}, headers=owner)
    assert_problem(unknown_event, 404, "event_not_found")
    unknown_endpoint = await client.post(
        f"{base}/{event.id}/replay", json={"endpoint_id": str(uuid.uuid4())}, headers=owner
    )
    assert_problem(unknown_endpoint, 404, "webhook_endpoint_not_found")
    assert await count(session, "webhook_deliveries") == 1
