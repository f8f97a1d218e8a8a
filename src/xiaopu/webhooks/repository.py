"""Queries for events, webhook endpoints, deliveries and attempts, scoped to their owner."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import Deferred, defer, raw_connection
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import (
    DeliveryStatus,
    EndpointStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)


def _endpoints(owner_id: uuid.UUID) -> Select[WebhookEndpoint]:
    return select(WebhookEndpoint).where(WebhookEndpoint.owner_id == owner_id)


async def count_endpoints(session: AsyncSession, owner_id: uuid.UUID) -> int:
    """How many endpoints the owner has, counted under a transaction-scoped advisory lock on the
    owner's endpoints, so that two creations at once cannot both pass a limit."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"endpoints:{owner_id}", 0)))
    )
    stmt = (
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.owner_id == owner_id)
    )
    return int(await session.scalar(stmt) or 0)


async def endpoint(
    session: AsyncSession, owner_id: uuid.UUID, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint | None:
    stmt = _endpoints(owner_id).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def endpoints(
    session: AsyncSession, owner_id: uuid.UUID, page: PageParams
) -> Sequence[WebhookEndpoint]:
    return (
        await session.scalars(newest_first(_endpoints(owner_id), WebhookEndpoint.id, page))
    ).all()


_INSERT_EVENT = (
    "INSERT INTO events (id, type, owner_id, data, created_at) VALUES ($1, $2, $3, $4, $5)"
)
_SUBSCRIBED = """
SELECT id FROM webhook_endpoints
WHERE owner_id = $3 AND status = 'enabled' AND event_types @> ARRAY[$2::varchar]
"""
_RECORD_EVENT = f"WITH inserted AS ({_INSERT_EVENT}) {_SUBSCRIBED}"


def _event_params(event: Event, data_json: str) -> tuple[object, ...]:
    return event.id, event.type, event.owner_id, data_json, event.created_at


async def record_event(session: AsyncSession, event: Event, data_json: str) -> list[uuid.UUID]:
    """Insert the event and return its owner's enabled endpoints subscribed to its type, in
    one statement on the session's own connection (every order step emits; nearly all go to no
    endpoint, and SQLAlchemy's per-statement cost would be most of the work)."""
    raw = await raw_connection(session)
    return [row["id"] for row in await raw.fetch(_RECORD_EVENT, *_event_params(event, data_json))]


async def record_event_later(
    session: AsyncSession,
    event: Event,
    data_json: str,
    subscribed: Callable[[list[uuid.UUID]], Awaitable[None]],
) -> None:
    """record_event, deferred to the unit of work's next statement; `subscribed` gets the
    endpoints then (the endpoints are not among what deferred writes write)."""

    async def then(rows: Sequence[Any]) -> None:
        await subscribed([row[0] for row in rows])

    await defer(
        session, Deferred((_INSERT_EVENT,), _event_params(event, data_json), _SUBSCRIBED, then)
    )


_RECORD_EVENTS = """
WITH inserted AS (
    INSERT INTO events (id, type, owner_id, data, created_at)
    SELECT e.id, $2, e.owner_id, e.data::jsonb, $5
    FROM unnest($1::uuid[], $3::uuid[], $4::text[]) AS e (id, owner_id, data)
)
SELECT e.id, w.id
FROM unnest($1::uuid[], $3::uuid[]) AS e (id, owner_id)
JOIN webhook_endpoints AS w ON w.owner_id = e.owner_id
WHERE w.status = 'enabled' AND w.event_types @> ARRAY[$2::varchar]
ORDER BY e.id, w.id
"""


async def record_events(
    session: AsyncSession,
    event_type: str,
    ids: Sequence[uuid.UUID],
    owner_ids: Sequence[uuid.UUID],
    data_json: Sequence[str],
    created_at: datetime,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """record_event for many events of one type in one statement: returns (event, endpoint)
    for each enabled endpoint of an event's owner subscribed to the type."""
    raw = await raw_connection(session)
    rows = await raw.fetch(
        _RECORD_EVENTS, list(ids), event_type, list(owner_ids), list(data_json), created_at
    )
    return [(row[0], row[1]) for row in rows]


async def subscribed_endpoints(
    session: AsyncSession, owner_id: uuid.UUID, event_type: str
) -> Sequence[WebhookEndpoint]:
    stmt = _endpoints(owner_id).where(
        WebhookEndpoint.status == EndpointStatus.enabled,
        WebhookEndpoint.event_types.contains([event_type]),
    )
    return (await session.scalars(stmt)).all()


def _events(owner_id: uuid.UUID) -> Select[Event]:
    return select(Event).where(Event.owner_id == owner_id)


async def event(session: AsyncSession, owner_id: uuid.UUID, event_id: uuid.UUID) -> Event | None:
    return await session.scalar(_events(owner_id).where(Event.id == event_id))


async def events(session: AsyncSession, owner_id: uuid.UUID, page: PageParams) -> Sequence[Event]:
    return (await session.scalars(newest_first(_events(owner_id), Event.id, page))).all()


async def delivery_for_update(
    session: AsyncSession, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, WebhookEndpoint, Event] | None:
    stmt = (
        select(WebhookDelivery, WebhookEndpoint, Event)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update(of=[WebhookDelivery, WebhookEndpoint])
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


async def deliveries(
    session: AsyncSession, owner_id: uuid.UUID, endpoint_id: uuid.UUID, page: PageParams
) -> Sequence[WebhookDelivery]:
    stmt = (
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookEndpoint.owner_id == owner_id, WebhookDelivery.endpoint_id == endpoint_id)
    )
    return (await session.scalars(newest_first(stmt, WebhookDelivery.id, page))).all()


async def attempts(
    session: AsyncSession, owner_id: uuid.UUID, endpoint_id: uuid.UUID, page: PageParams
) -> Sequence[WebhookAttempt]:
    stmt = (
        select(WebhookAttempt)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookAttempt.endpoint_id)
        .where(WebhookEndpoint.owner_id == owner_id, WebhookAttempt.endpoint_id == endpoint_id)
    )
    return (await session.scalars(newest_first(stmt, WebhookAttempt.id, page))).all()


async def cancel_pending(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.pending,
        )
        .values(status=DeliveryStatus.cancelled, next_attempt_at=None)
    )
