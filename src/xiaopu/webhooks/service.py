"""Webhook endpoints, the outbox (emit), delivery attempts on the retry schedule, and replay."""

from __future__ import annotations

import base64
import json
import random
import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu import queue
from xiaopu.errors import AppError, Conflict, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.models import (
    DeliveryStatus,
    EndpointStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookOwnerKind,
)
from xiaopu.models.base import draft
from xiaopu.webhooks import repository, sender
from xiaopu.webhooks.catalogue import SUBSCRIBABLE, EventType, Owner
from xiaopu.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventOut,
    SecretRotation,
)

DELIVER_JOB = "webhooks.deliver"
# Delay before each attempt, measured from the previous one (Standard Webhooks' suggestion).
RETRY_SCHEDULE = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.1
DISABLE_AFTER = timedelta(days=5)

# Counted when the attempt is made: a job that then fails to commit is run again and counts its
# attempt again, as the receiver sees it again.
DELIVERIES = Counter(
    "xiaopu_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: succeeded; retrying (failed, another attempt is "
    "scheduled); failed (failed for the last time); gone (the endpoint answered 410 and is "
    "disabled); cancelled (the endpoint was disabled, no attempt made).",
    ["outcome"],
)
MAX_PAYLOAD_BYTES = 20_000


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    title = "Webhook endpoint not found"


class EventNotFound(NotFound):
    code = "event_not_found"
    title = "Event not found"


class InsecureWebhookUrl(AppError):
    status = 422
    code = "insecure_webhook_url"
    title = "Webhook endpoints must use https"


def _check_scheme(url: str, *, allow_http: bool) -> str:
    if not url.startswith("https://") and not allow_http:
        raise InsecureWebhookUrl()
    return url


class EventTypeNotAvailable(AppError):
    status = 422
    code = "event_type_not_available"
    title = "This endpoint's owner never receives some of these event types"


_OWNER_NAMES = {
    WebhookOwnerKind.supplier: "a supplier",
    WebhookOwnerKind.application: "an application",
}


def _check_types(owner: Owner, event_types: Sequence[EventType]) -> list[str]:
    """The types sorted, or EventTypeNotAvailable naming those the owner never receives (a
    supplier hears of its own orders, an application of shops' and buyers')."""
    refused = sorted(str(t) for t in event_types if t not in SUBSCRIBABLE[owner.kind])
    if refused:
        raise EventTypeNotAvailable(
            f"Endpoints of {_OWNER_NAMES[owner.kind]} cannot subscribe to {', '.join(refused)}.",
            extra={
                "event_types": refused,
                "available": sorted(str(t) for t in SUBSCRIBABLE[owner.kind]),
            },
        )
    return sorted({str(t) for t in event_types})


class PayloadTooLargeForWebhook(AppError):
    status = 500
    code = "webhook_payload_too_large"
    title = "An event's payload exceeds the webhook size limit"


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# Endpoints ------------------------------------------------------------------------------------


# Endpoints one owner (a supplier, an application) may have: every event fans out to each
# subscribed one, so this bounds the deliveries (and replays) one event can cause.
MAX_ENDPOINTS = 16


class TooManyEndpoints(Conflict):
    code = "too_many_webhook_endpoints"
    title = f"A supplier or application has at most {MAX_ENDPOINTS} webhook endpoints"


async def create_endpoint(
    session: AsyncSession, owner: Owner, data: EndpointCreate, *, allow_http: bool
) -> EndpointWithSecret:
    event_types = _check_types(owner, data.event_types)
    if await repository.count_endpoints(session, owner) >= MAX_ENDPOINTS:
        raise TooManyEndpoints(
            f"Delete one of the endpoints of this {owner.kind} first.",
            extra={"max_endpoints": MAX_ENDPOINTS},
        )
    endpoint = WebhookEndpoint(
        owner_kind=owner.kind,
        owner_id=owner.id,
        url=_check_scheme(str(data.url), allow_http=allow_http),
        description=data.description,
        event_types=event_types,
        secret=_new_secret(),
    )
    session.add(endpoint)
    await session.flush()
    return EndpointWithSecret(
        **EndpointOut.model_validate(endpoint).model_dump(), secret=endpoint.secret
    )


async def _endpoint(
    session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint:
    endpoint = await repository.endpoint(session, owner, endpoint_id, for_update=for_update)
    if endpoint is None:
        raise WebhookEndpointNotFound()
    return endpoint


async def get_endpoint(
    session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> EndpointOut:
    """The endpoint; `for_update` holds it until the transaction ends (a caller recording its
    state before a change)."""
    return EndpointOut.model_validate(
        await _endpoint(session, owner, endpoint_id, for_update=for_update)
    )


async def list_endpoints(
    session: AsyncSession, owner: Owner, page: PageParams
) -> Page[EndpointOut]:
    rows = await repository.endpoints(session, owner, page)
    items, cursor = id_page(rows, page, lambda e: e.id)
    return Page[EndpointOut](
        items=[EndpointOut.model_validate(e) for e in items], next_cursor=cursor
    )


async def update_endpoint(
    session: AsyncSession,
    owner: Owner,
    endpoint_id: uuid.UUID,
    data: EndpointUpdate,
    *,
    allow_http: bool,
) -> EndpointOut:
    endpoint = await _endpoint(session, owner, endpoint_id, for_update=True)
    if data.url is not None:
        endpoint.url = _check_scheme(str(data.url), allow_http=allow_http)
    if data.event_types is not None:
        endpoint.event_types = _check_types(owner, data.event_types)
    if "description" in data.model_fields_set:
        endpoint.description = data.description
    if data.enabled is True and endpoint.status is EndpointStatus.disabled:
        endpoint.status = EndpointStatus.enabled
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    elif data.enabled is False and endpoint.status is EndpointStatus.enabled:
        await _disable(session, endpoint, "disabled by the subscriber")
    await session.flush()
    return EndpointOut.model_validate(endpoint)


async def delete_endpoint(session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID) -> None:
    endpoint = await _endpoint(session, owner, endpoint_id, for_update=True)
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(
    session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID, data: SecretRotation
) -> EndpointWithSecret:
    endpoint = await _endpoint(session, owner, endpoint_id, for_update=True)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=data.overlap_seconds)
    endpoint.secret = _new_secret()
    await session.flush()
    return EndpointWithSecret(
        **EndpointOut.model_validate(endpoint).model_dump(), secret=endpoint.secret
    )


async def _disable(session: AsyncSession, endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.status = EndpointStatus.disabled
    endpoint.disabled_reason = reason
    await repository.cancel_pending(session, endpoint.id)


async def cancel_pending_of_owner(session: AsyncSession, owner: Owner) -> None:
    """Cancel the owner's pending deliveries (an application being disabled); its endpoints
    keep their own status, so enabling the owner again restores them as they were."""
    await repository.cancel_pending_of_owner(session, owner)


# Outbox ---------------------------------------------------------------------------------------


async def emit(
    session: AsyncSession,
    event_type: EventType,
    owner_id: uuid.UUID,
    data: dict[str, Any],
    *,
    later: bool = False,
) -> Event:
    """Record an event in the caller's transaction and queue one delivery per endpoint that
    receives it (catalogue: the owning supplier's, or every active application's, subscribed to
    its type); both commit or vanish with the change that caused them. With `later`, the event
    is written with the unit of work's next statement (see db.defer), and its deliveries
    queued then: for a caller whose unit of work ends with db.unit_of_work, which sends it."""
    created_at = utcnow()
    data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # The payload as the sender will write it: the envelope around the data.
    size = len(sender.payload(str(event_type), created_at, {}).encode()) - 2
    size += len(data_json.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeForWebhook(f"{event_type} payload is {size} bytes")
    # Written by our own SQL below, not through the session: a draft, not an ORM object.
    event = draft(
        Event,
        id=new_id(),
        type=str(event_type),
        owner_id=owner_id,
        data=data,
        created_at=created_at,
    )

    async def deliver(endpoint_ids: list[uuid.UUID]) -> None:
        for endpoint_id in endpoint_ids:
            await _new_delivery(session, event, endpoint_id)

    # One round trip: the event is written and its subscribers named by the same statement
    # (every checkout, payment and fulfilment step emits, nearly always to no endpoint).
    if later:
        await repository.record_event_later(session, event, data_json, deliver)
    else:
        await deliver(await repository.record_event(session, event, data_json))
    return event


async def emit_many(
    session: AsyncSession,
    event_type: EventType,
    events: Sequence[tuple[uuid.UUID, dict[str, Any]]],
) -> None:
    """emit() for many events of one type, each (owner, data): a job's batch. The events are
    written by one statement however many there are, and the deliveries of those with
    subscribers by two more."""
    if not events:
        return
    created_at = utcnow()
    envelope = len(sender.payload(str(event_type), created_at, {}).encode()) - 2
    ids, owners, payloads = [], [], []
    for owner_id, data in events:
        data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        size = envelope + len(data_json.encode())
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeForWebhook(f"{event_type} payload is {size} bytes")
        ids.append(new_id())
        owners.append(owner_id)
        payloads.append(data_json)
    subscribed = await repository.record_events(
        session, str(event_type), ids, owners, payloads, created_at
    )
    if not subscribed:
        return
    deliveries = [
        WebhookDelivery(event_id=event_id, endpoint_id=endpoint_id, next_attempt_at=created_at)
        for event_id, endpoint_id in subscribed
    ]
    session.add_all(deliveries)
    await session.flush()
    await queue.enqueue_many(
        session,
        DELIVER_JOB,
        [json.dumps({"delivery_id": str(d.id), "attempt": 1}).encode() for d in deliveries],
    )


async def _new_delivery(
    session: AsyncSession, event: Event, endpoint_id: uuid.UUID
) -> WebhookDelivery:
    delivery = WebhookDelivery(event_id=event.id, endpoint_id=endpoint_id, next_attempt_at=utcnow())
    session.add(delivery)
    await session.flush()
    await _schedule(session, delivery, attempt=1, delay=timedelta(0))
    return delivery


async def _schedule(
    session: AsyncSession, delivery: WebhookDelivery, *, attempt: int, delay: timedelta
) -> None:
    payload = json.dumps({"delivery_id": str(delivery.id), "attempt": attempt}).encode()
    await queue.enqueue(session, DELIVER_JOB, payload, execute_after=delay)


def _jittered(delay: timedelta) -> timedelta:
    if not delay:
        return delay
    return delay * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - not for secrets


# Delivery -------------------------------------------------------------------------------------


async def attempt_delivery(
    session: AsyncSession,
    client: httpx.AsyncClient,
    delivery_id: uuid.UUID,
    attempt: int,
    *,
    allow_loopback: bool,
) -> WebhookAttempt | None:
    """Make attempt number `attempt` of a delivery, record it, and schedule the next one.

    A job that runs twice (a worker died after the attempt was committed) finds the attempt
    count already past it and does nothing, so the retry chain never forks.
    """
    found = await repository.delivery_for_update(session, delivery_id)
    if found is None:
        return None
    delivery, endpoint, event, owner_receives = found
    if delivery.status is not DeliveryStatus.pending or delivery.attempts != attempt - 1:
        return None
    if endpoint.status is not EndpointStatus.enabled or not owner_receives:
        delivery.status = DeliveryStatus.cancelled
        delivery.next_attempt_at = None
        DELIVERIES.labels("cancelled").inc()
        return None

    now = utcnow()
    keys = [endpoint.secret]
    if (
        endpoint.previous_secret is not None
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    ):
        keys.append(endpoint.previous_secret)
    result = await sender.send(
        client,
        url=endpoint.url,
        message_id=f"msg_{event.id.hex}",
        body=sender.payload(event.type, event.created_at, event.data),
        secrets=keys,
        at=now,
        allow_loopback=allow_loopback,
    )
    record = WebhookAttempt(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        attempted_at=now,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        succeeded=result.succeeded,
        error=result.error[:500] if result.error else None,
        response_snippet=result.response_snippet,
    )
    session.add(record)
    delivery.attempts = attempt
    delivery.last_attempt_at = now

    if result.succeeded:
        outcome = "succeeded"
        delivery.status = DeliveryStatus.succeeded
        delivery.next_attempt_at = None
        endpoint.failing_since = None
    elif result.status_code == 410:
        outcome = "gone"
        delivery.status = DeliveryStatus.cancelled
        delivery.next_attempt_at = None
        await _disable(session, endpoint, "the endpoint answered 410 Gone")
    else:
        outcome = "failed"
        endpoint.failing_since = endpoint.failing_since or now
        if now - endpoint.failing_since >= DISABLE_AFTER:
            delivery.status = DeliveryStatus.failed
            delivery.next_attempt_at = None
            await _disable(session, endpoint, "every delivery failed for 5 days")
        elif attempt >= len(RETRY_SCHEDULE):
            delivery.status = DeliveryStatus.failed
            delivery.next_attempt_at = None
        else:
            outcome = "retrying"
            delay = _jittered(RETRY_SCHEDULE[attempt])
            delivery.next_attempt_at = now + delay
            await _schedule(session, delivery, attempt=attempt + 1, delay=delay)
    DELIVERIES.labels(outcome).inc()
    await session.flush()
    return record


# Events, deliveries, attempts, replay ----------------------------------------------------------


async def list_events(session: AsyncSession, owner: Owner, page: PageParams) -> Page[EventOut]:
    rows = await repository.events(session, owner, page)
    items, cursor = id_page(rows, page, lambda e: e.id)
    return Page[EventOut](items=[EventOut.model_validate(e) for e in items], next_cursor=cursor)


async def list_deliveries(
    session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID, page: PageParams
) -> Page[DeliveryOut]:
    await _endpoint(session, owner, endpoint_id)
    rows = await repository.deliveries(session, owner, endpoint_id, page)
    items, cursor = id_page(rows, page, lambda d: d.id)
    return Page[DeliveryOut](
        items=[DeliveryOut.model_validate(d) for d in items], next_cursor=cursor
    )


async def list_attempts(
    session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID, page: PageParams
) -> Page[AttemptOut]:
    await _endpoint(session, owner, endpoint_id)
    rows = await repository.attempts(session, owner, endpoint_id, page)
    items, cursor = id_page(rows, page, lambda a: a.id)
    return Page[AttemptOut](items=[AttemptOut.model_validate(a) for a in items], next_cursor=cursor)


async def replay(
    session: AsyncSession, owner: Owner, event_id: uuid.UUID, endpoint_id: uuid.UUID | None
) -> list[DeliveryOut]:
    """Deliver an event again (same webhook-id) to one of the owner's endpoints or every one
    of them subscribed to its type."""
    event = await repository.event(session, owner, event_id)
    if event is None:
        raise EventNotFound()
    if endpoint_id is not None:
        targets = [await _endpoint(session, owner, endpoint_id)]
    else:
        targets = list(await repository.subscribed_endpoints(session, owner, event.type))
    deliveries = [await _new_delivery(session, event, endpoint.id) for endpoint in targets]
    return [DeliveryOut.model_validate(d) for d in deliveries]
