"""Helpers for the webhook tests: problem assertions, endpoints, events, attempts and jobs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from xiaopu.webhooks import service
from xiaopu.webhooks.catalogue import EventType

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
CREATED = "api_key.created"
REVOKED = "api_key.revoked"
# The documented retry schedule: the delay before attempt n+1, after attempt n failed.
SCHEDULE = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is application/problem+json with this status and code; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["code"] == code, body
    return body


def endpoints_url(supplier_id: str) -> str:
    return f"/v1/suppliers/{supplier_id}/webhook-endpoints"


async def new_endpoint(
    client: httpx.AsyncClient,
    supplier_id: str,
    headers: dict[str, str],
    url: str = "https://hooks.example.com/xiaopu",
    event_types: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Create an endpoint through the API; the answer includes its secret."""
    response = await client.post(
        endpoints_url(supplier_id),
        json={"url": url, "event_types": event_types or [CREATED], **extra},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def emit(
    session: AsyncSession,
    supplier_id: str,
    data: dict[str, Any] | None = None,
    event_type: EventType = EventType.api_key_created,
) -> Event:
    """Record an event for the supplier, as a domain change would, in the test's transaction."""
    event = await service.emit(session, event_type, uuid.UUID(supplier_id), data or {"n": 1})
    await session.flush()
    return event


async def endpoint_row(session: AsyncSession, endpoint_id: str | uuid.UUID) -> WebhookEndpoint:
    row = await session.scalar(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == uuid.UUID(str(endpoint_id)))
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


async def deliveries(
    session: AsyncSession,
    *,
    endpoint_id: str | uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
) -> list[WebhookDelivery]:
    """Deliveries as stored now (re-read, not from the session's identity map), oldest first."""
    stmt = select(WebhookDelivery).execution_options(populate_existing=True)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == uuid.UUID(str(endpoint_id)))
    if event_id is not None:
        stmt = stmt.where(WebhookDelivery.event_id == event_id)
    return list((await session.scalars(stmt.order_by(WebhookDelivery.id))).all())


async def the_delivery(session: AsyncSession, endpoint_id: str | uuid.UUID) -> WebhookDelivery:
    (delivery,) = await deliveries(session, endpoint_id=endpoint_id)
    return delivery


async def attempts(session: AsyncSession, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    stmt = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
    )
    return list((await session.scalars(stmt)).all())


async def attempt(
    session: AsyncSession,
    http: httpx.AsyncClient,
    delivery_id: uuid.UUID,
    number: int,
    *,
    allow_loopback: bool = True,
) -> WebhookAttempt | None:
    """Run attempt `number` of a delivery, as the worker's job would.

    The session forgets what it loaded first: the API may have changed rows since (each job
    gets a fresh session in the worker).
    """
    session.expire_all()
    return await service.attempt_delivery(
        session, http, delivery_id, number, allow_loopback=allow_loopback
    )


@dataclass(frozen=True)
class Job:
    delivery_id: uuid.UUID
    attempt: int
    # How long after the queuing transaction's start the job becomes due.
    delay: timedelta


async def queued_jobs(session: AsyncSession, delivery_id: uuid.UUID | None = None) -> list[Job]:
    """The webhooks.deliver jobs in pgqueuer, optionally only those of one delivery."""
    rows = (
        await session.execute(
            text(
                "SELECT payload, execute_after - NOW() AS delay FROM pgqueuer "
                "WHERE entrypoint = :entrypoint ORDER BY id"
            ),
            {"entrypoint": service.DELIVER_JOB},
        )
    ).all()
    jobs = []
    for payload, delay in rows:
        message = json.loads(payload)
        job = Job(uuid.UUID(message["delivery_id"]), int(message["attempt"]), delay)
        if delivery_id is None or job.delivery_id == delivery_id:
            jobs.append(job)
    return jobs


async def count(session: AsyncSession, table: str) -> int:
    """Rows in a table (a fixed name from the tests, never user input)."""
    value = await session.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
    return int(value or 0)
