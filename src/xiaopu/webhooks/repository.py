"""Queries for events, webhook endpoints, deliveries and attempts, scoped to their owner."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import Deferred, defer, raw_connection
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import (
    Application,
    ApplicationStatus,
    DeliveryStatus,
    EndpointStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookOwnerKind,
)
from xiaopu.webhooks.catalogue import APPLICATION_EVENTS, SUPPLIER_EVENTS, Owner


def _owned(owner: Owner) -> ColumnElement[bool]:
    return and_(WebhookEndpoint.owner_kind == owner.kind, WebhookEndpoint.owner_id == owner.id)


def _endpoints(owner: Owner) -> Select[WebhookEndpoint]:
    return select(WebhookEndpoint).where(_owned(owner))


async def count_endpoints(session: AsyncSession, owner: Owner) -> int:
    """How many endpoints the owner has, counted under a transaction-scoped advisory lock on the
    owner's endpoints, so that two creations at once cannot both pass a limit."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"endpoints:{owner.id}", 0)))
    )
    stmt = select(func.count()).select_from(WebhookEndpoint).where(_owned(owner))
    return int(await session.scalar(stmt) or 0)


async def endpoint(
    session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint | None:
    stmt = _endpoints(owner).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def endpoints(
    session: AsyncSession, owner: Owner, page: PageParams
) -> Sequence[WebhookEndpoint]:
    return (await session.scalars(newest_first(_endpoints(owner), WebhookEndpoint.id, page))).all()


_INSERT_EVENT = (
    "INSERT INTO events (id, type, owner_id, data, created_at) VALUES ($1, $2, $3, $4, $5)"
)
# Who receives an event of type $2 owned by $3: the owner's endpoints if the owner is a supplier
# (a shop's id matches no supplier endpoint), and every active application's.
_TO_SUPPLIER = """
SELECT id FROM webhook_endpoints
WHERE owner_kind = 'supplier' AND owner_id = $3 AND status = 'enabled'
    AND event_types @> ARRAY[$2::varchar]
"""
_TO_APPLICATIONS = """
SELECT w.id FROM webhook_endpoints AS w JOIN applications AS a ON a.id = w.owner_id
WHERE w.owner_kind = 'application' AND w.status = 'enabled' AND a.status = 'active'
    AND w.event_types @> ARRAY[$2::varchar]
"""


@functools.lru_cache(maxsize=64)
def _subscribed(event_type: str) -> str:
    """The query naming an event's receivers, by the audiences of its type (catalogue)."""
    parts = []
    if event_type in SUPPLIER_EVENTS:
        parts.append(_TO_SUPPLIER)
    if event_type in APPLICATION_EVENTS:
        parts.append(_TO_APPLICATIONS)
    if not parts:
        raise ValueError(f"{event_type} has no audience in webhooks.catalogue")
    return " UNION ALL ".join(parts)


@functools.lru_cache(maxsize=64)
def _record_event(event_type: str) -> str:
    return f"WITH inserted AS ({_INSERT_EVENT}) {_subscribed(event_type)}"


def _event_params(event: Event, data_json: str) -> tuple[object, ...]:
    return event.id, event.type, event.owner_id, data_json, event.created_at


async def record_event(session: AsyncSession, event: Event, data_json: str) -> list[uuid.UUID]:
    """Insert the event and return the enabled endpoints subscribed to its type that receive
    it, in one statement on the session's own connection (every order step emits; nearly all go
    to few endpoints, and SQLAlchemy's per-statement cost would be most of the work)."""
    raw = await raw_connection(session)
    sql = _record_event(event.type)
    return [row["id"] for row in await raw.fetch(sql, *_event_params(event, data_json))]


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
        session,
        Deferred((_INSERT_EVENT,), _event_params(event, data_json), _subscribed(event.type), then),
    )


_INSERT_EVENTS = """
WITH inserted AS (
    INSERT INTO events (id, type, owner_id, data, created_at)
    SELECT e.id, $2, e.owner_id, e.data::jsonb, $5
    FROM unnest($1::uuid[], $3::uuid[], $4::text[]) AS e (id, owner_id, data)
)
"""
_EVENTS_TO_SUPPLIERS = """
SELECT e.id, w.id
FROM unnest($1::uuid[], $3::uuid[]) AS e (id, owner_id)
JOIN webhook_endpoints AS w ON w.owner_kind = 'supplier' AND w.owner_id = e.owner_id
WHERE w.status = 'enabled' AND w.event_types @> ARRAY[$2::varchar]
"""
_EVENTS_TO_APPLICATIONS = """
SELECT e.id, w.id
FROM unnest($1::uuid[]) AS e (id)
CROSS JOIN webhook_endpoints AS w JOIN applications AS a ON a.id = w.owner_id
WHERE w.owner_kind = 'application' AND w.status = 'enabled' AND a.status = 'active'
    AND w.event_types @> ARRAY[$2::varchar]
"""


@functools.lru_cache(maxsize=64)
def _record_events(event_type: str) -> str:
    parts = []
    if event_type in SUPPLIER_EVENTS:
        parts.append(_EVENTS_TO_SUPPLIERS)
    if event_type in APPLICATION_EVENTS:
        parts.append(_EVENTS_TO_APPLICATIONS)
    if not parts:
        raise ValueError(f"{event_type} has no audience in webhooks.catalogue")
    return _INSERT_EVENTS + " UNION ALL ".join(parts) + " ORDER BY 1, 2"


async def record_events(
    session: AsyncSession,
    event_type: str,
    ids: Sequence[uuid.UUID],
    owner_ids: Sequence[uuid.UUID],
    data_json: Sequence[str],
    created_at: datetime,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """record_event for many events of one type in one statement: returns (event, endpoint)
    for each enabled endpoint subscribed to the type that receives the event."""
    raw = await raw_connection(session)
    rows = await raw.fetch(
        _record_events(event_type),
        list(ids),
        event_type,
        list(owner_ids),
        list(data_json),
        created_at,
    )
    return [(row[0], row[1]) for row in rows]


async def subscribed_endpoints(
    session: AsyncSession, owner: Owner, event_type: str
) -> Sequence[WebhookEndpoint]:
    stmt = _endpoints(owner).where(
        WebhookEndpoint.status == EndpointStatus.enabled,
        WebhookEndpoint.event_types.contains([event_type]),
    )
    return (await session.scalars(stmt)).all()


_APPLICATION_TYPES = sorted(str(t) for t in APPLICATION_EVENTS)


def _events(owner: Owner) -> Select[Event]:
    """The events an owner may read and replay: a supplier's own, or, for an application, every
    event of a type applications receive (whichever shop or buyer it concerns)."""
    if owner.kind is WebhookOwnerKind.application:
        return select(Event).where(Event.type.in_(_APPLICATION_TYPES))
    return select(Event).where(Event.owner_id == owner.id)


async def event(session: AsyncSession, owner: Owner, event_id: uuid.UUID) -> Event | None:
    return await session.scalar(_events(owner).where(Event.id == event_id))


async def events(session: AsyncSession, owner: Owner, page: PageParams) -> Sequence[Event]:
    return (await session.scalars(newest_first(_events(owner), Event.id, page))).all()


async def delivery_for_update(
    session: AsyncSession, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, WebhookEndpoint, Event, bool] | None:
    """The delivery, its endpoint and event, and whether the endpoint's owner still receives
    (an application may have been disabled since the delivery was queued)."""
    stmt = (
        select(
            WebhookDelivery,
            WebhookEndpoint,
            Event,
            func.coalesce(Application.status, ApplicationStatus.active.value),
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .outerjoin(
            Application,
            and_(
                WebhookEndpoint.owner_kind == WebhookOwnerKind.application,
                Application.id == WebhookEndpoint.owner_id,
            ),
        )
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update(of=[WebhookDelivery, WebhookEndpoint])
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return None
    return row[0], row[1], row[2], row[3] == ApplicationStatus.active.value


async def deliveries(
    session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID, page: PageParams
) -> Sequence[WebhookDelivery]:
    stmt = (
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(_owned(owner), WebhookDelivery.endpoint_id == endpoint_id)
    )
    return (await session.scalars(newest_first(stmt, WebhookDelivery.id, page))).all()


async def attempts(
    session: AsyncSession, owner: Owner, endpoint_id: uuid.UUID, page: PageParams
) -> Sequence[WebhookAttempt]:
    stmt = (
        select(WebhookAttempt)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookAttempt.endpoint_id)
        .where(_owned(owner), WebhookAttempt.endpoint_id == endpoint_id)
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


async def cancel_pending_of_owner(session: AsyncSession, owner: Owner) -> None:
    """Cancel every pending delivery to the owner's endpoints (its endpoints stay as they are)."""
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id.in_(select(WebhookEndpoint.id).where(_owned(owner))),
            WebhookDelivery.status == DeliveryStatus.pending,
        )
        .values(status=DeliveryStatus.cancelled, next_attempt_at=None)
    )
