"""The outbox: an event, its deliveries and their jobs commit or vanish with the change."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import api_key, supplier
from tests.webhooks.helpers import (
    CREATED,
    REVOKED,
    assert_problem,
    count,
    deliveries,
    endpoints_url,
    new_endpoint,
    queued_jobs,
)
from xiaopu.app import create_app
from xiaopu.auth import service as auth_service
from xiaopu.auth.schemas import ApiKeyCreate
from xiaopu.config import Settings
from xiaopu.db import unit_of_work
from xiaopu.models import ApiKey, Event
from xiaopu.webhooks import service
from xiaopu.webhooks.catalogue import EventType

OUTBOX_TABLES = ("events", "webhook_deliveries", "api_keys")


async def snapshot(session: AsyncSession) -> dict[str, int]:
    counts = {table: await count(session, table) for table in OUTBOX_TABLES}
    counts["jobs"] = len(await queued_jobs(session))
    return counts


async def account_of(client: httpx.AsyncClient, headers: dict[str, str]) -> uuid.UUID:
    me = await client.get("/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    return uuid.UUID(me.json()["id"])


async def test_a_rolled_back_transaction_leaves_no_change_event_or_job(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    supplier_id, owner = await supplier(client)
    await new_endpoint(client, supplier_id, owner)
    account_id = await account_of(client, owner)

    async with sessionmaker() as session:
        before = await snapshot(session)
        nested = await session.begin_nested()
        await auth_service.create_api_key(
            session,
            uuid.UUID(supplier_id),
            account_id,
            ApiKeyCreate.model_validate({"name": "doomed", "scopes": ["supplier:read"]}),
        )
        await session.flush()
        inside = await snapshot(session)
        assert inside == {k: v + 1 for k, v in before.items()}
        await nested.rollback()

        assert await snapshot(session) == before
        assert await session.scalar(select(ApiKey).where(ApiKey.name == "doomed")) is None


async def test_a_committed_change_has_one_event_and_one_job_per_subscribed_endpoint(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    subscribed = await new_endpoint(client, supplier_id, owner, event_types=[CREATED])
    both = await new_endpoint(client, supplier_id, owner, event_types=[CREATED, REVOKED])
    other_type = await new_endpoint(client, supplier_id, owner, event_types=[REVOKED])
    disabled = await new_endpoint(client, supplier_id, owner, event_types=[CREATED])
    off = await client.patch(
        f"{endpoints_url(supplier_id)}/{disabled['id']}", json={"enabled": False}, headers=owner
    )
    assert off.json()["status"] == "disabled"
    # Another supplier's endpoint, subscribed to the same type, hears nothing of it.
    other_id, other_owner = await supplier(client)
    foreign = await new_endpoint(client, other_id, other_owner, event_types=[CREATED])
    before = await snapshot(session)

    key = await api_key(client, supplier_id, owner, ["supplier:read"])

    events = (await session.scalars(select(Event).where(Event.type == CREATED))).all()
    (event,) = [e for e in events if e.data.get("id") == key["id"]]
    assert event.owner_id == uuid.UUID(supplier_id)
    made = await deliveries(session, event_id=event.id)
    assert {str(d.endpoint_id) for d in made} == {subscribed["id"], both["id"]}
    jobs = await queued_jobs(session)
    assert sorted((j.delivery_id, j.attempt) for j in jobs[before["jobs"] :]) == sorted(
        (d.id, 1) for d in made
    )
    for endpoint in (other_type, disabled, foreign):
        assert await deliveries(session, endpoint_id=endpoint["id"]) == []
    after = await snapshot(session)
    assert after["events"] == before["events"] + 1
    assert after["webhook_deliveries"] == before["webhook_deliveries"] + 2
    assert after["jobs"] == before["jobs"] + 2


async def test_an_event_nobody_subscribed_to_is_kept_without_deliveries(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    await new_endpoint(client, supplier_id, owner, event_types=[REVOKED])
    before = await snapshot(session)
    event = await service.emit(session, EventType.payout_paid, uuid.UUID(supplier_id), {"x": 1})
    after = await snapshot(session)
    assert after["events"] == before["events"] + 1
    assert (after["webhook_deliveries"], after["jobs"]) == (
        before["webhook_deliveries"],
        before["jobs"],
    )
    listed = await client.get(f"/v1/suppliers/{supplier_id}/events", headers=owner)
    assert [e["id"] for e in listed.json()["items"]] == [str(event.id)]


@pytest.fixture
async def fragile_client(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app, where creating an API key fails after its event has been written."""
    real_emit = service.emit

    async def emit_then_fail(*args: Any, **kwargs: Any) -> Event:
        await real_emit(*args, **kwargs)
        raise RuntimeError("the request fails after the outbox write")

    monkeypatch.setattr(service, "emit", emit_then_fail)
    app = create_app(settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_a_request_that_fails_after_emitting_leaves_nothing(
    client: httpx.AsyncClient, fragile_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    await new_endpoint(client, supplier_id, owner)
    before = await snapshot(session)

    response = await fragile_client.post(
        f"/v1/suppliers/{supplier_id}/api-keys",
        json={"name": "ERP", "scopes": ["supplier:read"]},
        headers=owner,
    )

    assert_problem(response, 500, "internal_error")
    assert await snapshot(session) == before
    listed = await client.get(f"/v1/suppliers/{supplier_id}/api-keys", headers=owner)
    assert listed.json()["items"] == []


async def test_an_event_emitted_later_gets_its_deliveries_and_jobs_when_it_is_sent(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    """Checkout emits order.placed with later=True: the event goes with the unit of work's
    last statement, and its subscribers' deliveries and jobs are queued then, before commit."""
    supplier_id, owner = await supplier(client)
    subscribed = await new_endpoint(client, supplier_id, owner, event_types=[CREATED])
    before = await snapshot(session)

    async with unit_of_work(sessionmaker) as work:
        event = await service.emit(
            work, EventType.api_key_created, uuid.UUID(supplier_id), {"id": "k"}, later=True
        )
        assert await count(session, "events") == before["events"]  # not sent yet

    (delivery,) = await deliveries(session, event_id=event.id)
    assert str(delivery.endpoint_id) == subscribed["id"]
    assert [j.delivery_id for j in await queued_jobs(session)][before["jobs"] :] == [delivery.id]
    assert await count(session, "events") == before["events"] + 1


async def test_events_emitted_together_are_each_delivered_to_their_owners_subscribers(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    subscribed = await new_endpoint(client, supplier_id, owner, event_types=[CREATED])
    await new_endpoint(client, supplier_id, owner, event_types=[REVOKED])
    quiet_id, _ = await supplier(client)  # no endpoint: its events are only kept
    before = await snapshot(session)

    emitted = [(uuid.UUID(supplier_id), {"n": n}) for n in range(3)]
    emitted.append((uuid.UUID(quiet_id), {"n": 3}))
    await service.emit_many(session, EventType.api_key_created, emitted)

    events = (
        await session.scalars(
            select(Event).where(Event.type == CREATED).execution_options(populate_existing=True)
        )
    ).all()
    written = sorted((str(e.owner_id), e.data["n"]) for e in events if "n" in e.data)
    assert written == [(supplier_id, 0), (supplier_id, 1), (supplier_id, 2), (quiet_id, 3)]
    made = await deliveries(session, endpoint_id=subscribed["id"])
    by_event = {e.id: e.data["n"] for e in events if "n" in e.data}
    assert sorted(by_event[d.event_id] for d in made) == [0, 1, 2]
    jobs = await queued_jobs(session)
    assert sorted((j.delivery_id, j.attempt) for j in jobs[before["jobs"] :]) == sorted(
        (d.id, 1) for d in made
    )
    after = await snapshot(session)
    assert after["events"] == before["events"] + 4
    assert after["webhook_deliveries"] == before["webhook_deliveries"] + 3


async def test_events_emitted_together_are_refused_whole_if_one_is_too_large(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, _ = await supplier(client)
    before = await snapshot(session)
    too_large = {"blob": "x" * service.MAX_PAYLOAD_BYTES}
    with pytest.raises(service.PayloadTooLargeForWebhook):
        await service.emit_many(
            session,
            EventType.api_key_created,
            [(uuid.UUID(supplier_id), {"n": 0}), (uuid.UUID(supplier_id), too_large)],
        )
    assert await snapshot(session) == before
