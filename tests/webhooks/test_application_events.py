"""Events reach their audience: a shop's and buyer's events every active application's endpoints,
signed per Standard Webhooks and without personal data; a supplier's events its own endpoints."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from tests.factories import api_key
from tests.orders.helpers import (
    ADDRESS,
    Market,
    checkout,
    market,
    pay,
    run_queued,
    supplier_act,
)
from tests.settlements.helpers import complete_all, delivered_order
from tests.webhooks.helpers import assert_problem, attempt, deliveries, endpoints_url, new_endpoint
from tests.webhooks.receiver import Received, Receiver
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.models import DeliveryStatus, Event, WebhookDelivery
from xiaopu.webhooks.catalogue import APPLICATION_EVENTS, SUPPLIER_EVENTS

APPS = "/v1/operator/applications"
APP_TYPES = sorted(str(t) for t in APPLICATION_EVENTS)
SUPPLIER_TYPES = sorted(str(t) for t in SUPPLIER_EVENTS)
# What an event may never carry: a person's details, as keys or as the buyer's values.
PERSONAL_KEYS = {"phone", "email", "address", "recipient", "name", "display_name", "buyer_phone"}


async def application(
    client: httpx.AsyncClient, op: dict[str, str], url: str, event_types: list[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """An operator's new application and its endpoint (with its secret)."""
    made = await client.post(APPS, json={"name": "mobile app backend"}, headers=op)
    assert made.status_code == 201, made.text
    app_id = str(made.json()["id"])
    endpoint = await client.post(
        f"{APPS}/{app_id}/webhook-endpoints",
        json={"url": url, "event_types": event_types or APP_TYPES},
        headers=op,
    )
    assert endpoint.status_code == 201, endpoint.text
    return app_id, endpoint.json()


async def delivered_types(session: AsyncSession, endpoint_id: str) -> list[str]:
    rows = await session.execute(
        select(Event.type)
        .join(WebhookDelivery, WebhookDelivery.event_id == Event.id)
        .where(WebhookDelivery.endpoint_id == uuid.UUID(endpoint_id))
        .order_by(WebhookDelivery.id)
    )
    return [t for (t,) in rows]


async def delivered_events(session: AsyncSession, endpoint_id: str) -> list[Event]:
    stmt = (
        select(Event)
        .join(WebhookDelivery, WebhookDelivery.event_id == Event.id)
        .where(WebhookDelivery.endpoint_id == uuid.UUID(endpoint_id))
        .order_by(WebhookDelivery.id)
    )
    return list((await session.scalars(stmt)).all())


def verify_signed(received: Received, secret: str) -> dict[str, Any]:
    """The signature is the secret's over the id, timestamp and body sent (Standard Webhooks);
    checked without the library's clock tolerance, as the tests move the clock by days."""
    headers = received.headers
    at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(headers["webhook-id"], at, received.body.decode())
    assert expected in headers["webhook-signature"].split(" ")
    body: dict[str, Any] = json.loads(received.body)
    return body


def assert_no_personal_data(data: dict[str, Any]) -> None:
    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    assert not keys(data) & PERSONAL_KEYS, data
    text = json.dumps(data, ensure_ascii=False)
    for value in (ADDRESS["recipient"], ADDRESS["phone"], ADDRESS["line1"], ADDRESS["city"]):
        assert value not in text, data


async def supplier_endpoint(client: httpx.AsyncClient, m: Market, url: str) -> dict[str, Any]:
    supply = m.suppliers[0]
    return await new_endpoint(client, supply.id, supply.owner.headers, url, SUPPLIER_TYPES)


async def test_a_shops_order_commission_and_promotion_reach_the_application_not_the_supplier(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    http: httpx.AsyncClient,
    hook: Receiver,
    test_clock: Clock,
) -> None:
    m = await market(client, session, return_window_days=1)
    app_id, endpoint = await application(client, m.op.headers, hook.url)
    theirs = await supplier_endpoint(client, m, "https://supplier.example.com/hooks")
    # A second application hears everything too; a disabled one hears nothing.
    _, other = await application(client, m.op.headers, "https://other.example.com/hooks")
    off_id, off = await application(client, m.op.headers, "https://off.example.com/hooks")
    disabled = await client.post(
        f"{APPS}/{off_id}/disable", json={"reason": "retired"}, headers=m.op.headers
    )
    assert disabled.status_code == 200, disabled.text

    order = await delivered_order(client, m, 2)
    # The application reads the shop's events; the supplier reads none of them. (Read before
    # the clock moves past the return window, and everyone's access token with it.)
    listed = await client.get(f"{APPS}/{app_id}/events", headers=m.op.headers)
    assert {e["type"] for e in listed.json()["items"]} == {
        "order.placed",
        "order.paid",
        "commission.accrued",
    }
    supply = m.suppliers[0]
    theirs_listed = await client.get(
        f"/v1/suppliers/{supply.id}/events", headers=supply.owner.headers
    )
    assert {e["type"] for e in theirs_listed.json()["items"]} <= set(SUPPLIER_TYPES)
    promoting = settings.model_copy(update={"standard_shop_after_sales": 1})
    assert await complete_all(session, promoting, test_clock) == 1

    app_types = await delivered_types(session, endpoint["id"])
    assert app_types == [
        "order.placed",
        "order.paid",
        "commission.accrued",
        "commission.available",
        "shop.promoted",
    ]
    assert await delivered_types(session, other["id"]) == app_types
    assert await delivered_types(session, off["id"]) == []
    assert await delivered_types(session, theirs["id"]) == [
        "supplier_order.paid",
        "supplier_order.shipped",
        "supplier_order.delivered",
        "supplier_order.completed",
    ]

    # The payloads: ids and amounts. 2 units of 10,000 at 10% commission and 10% markup.
    (part,) = order["supplier_orders"]
    shop_id = order["shop_id"]
    by_type = {e.type: e.data for e in await delivered_events(session, endpoint["id"])}
    assert by_type["commission.accrued"] == {
        "shop_id": shop_id,
        "order_id": order["id"],
        "supplier_order_id": part["id"],
        "currency": "CNY",
        "amount_minor": 4_000,
        "commission_minor": 2_000,
        "boost_minor": 0,
        "markup_minor": 2_000,
        "status": "pending",
    }
    assert by_type["commission.available"] == {
        "shop_id": shop_id,
        "order_id": order["id"],
        "supplier_order_id": part["id"],
        "currency": "CNY",
        "amount_minor": 4_000,
        "cause": "completion",
    }
    assert by_type["shop.promoted"] == {
        "shop_id": shop_id,
        "level": "standard",
        "previous_level": "trial",
        "completed_sales": 1,
    }
    assert by_type["order.paid"]["order_id"] == order["id"]
    assert by_type["order.paid"]["buyer_account_id"] is None  # a guest
    for data in by_type.values():
        assert_no_personal_data(data)

    # Delivered to the application's URL, each signed with its endpoint's secret.
    made = [d.id for d in await deliveries(session, endpoint_id=endpoint["id"])]
    for delivery_id in made:
        record = await attempt(session, http, delivery_id, 1)
        assert record is not None
        assert record.succeeded, record
    assert len(hook.requests) == len(made)
    for received in hook.requests:
        body = verify_signed(received, endpoint["secret"])
        assert body["data"] == by_type[body["type"]]
        assert_no_personal_data(body)


async def test_a_refund_reverses_the_shops_commission_for_applications_and_tells_both(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, hook: Receiver
) -> None:
    m = await market(client, session)
    _, endpoint = await application(client, m.op.headers, hook.url)
    theirs = await supplier_endpoint(client, m, "https://supplier.example.com/hooks")
    order = await checkout(client, m.slug, [(m.variant, 1)])
    await pay(client, order)
    (part,) = order["supplier_orders"]
    cancelled = await supplier_act(
        client, m.suppliers[0], part["id"], "cancel", {"reason": "out of stock"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert await run_queued(session, settings) == 1

    assert await delivered_types(session, endpoint["id"]) == [
        "order.placed",
        "order.paid",
        "commission.accrued",
        "commission.reversed",
        "refund.succeeded",
    ]
    # A refund concerns the supplier whose order it refunds as well: both hear of it.
    assert await delivered_types(session, theirs["id"]) == [
        "supplier_order.paid",
        "supplier_order.cancelled",
        "refund.succeeded",
    ]
    by_type = {e.type: e.data for e in await delivered_events(session, endpoint["id"])}
    reversed_ = by_type["commission.reversed"]
    refund = by_type["refund.succeeded"]
    assert reversed_ == {
        "shop_id": order["shop_id"],
        "order_id": order["id"],
        "supplier_order_id": part["id"],
        "currency": "CNY",
        "amount_minor": 2_000,
        "cause": "refund",
        "refund_id": refund["refund_id"],
        "clawback": False,
    }
    assert refund["shop_id"] == order["shop_id"]
    for data in by_type.values():
        assert_no_personal_data(data)


async def test_a_signed_in_buyers_order_names_their_account_and_nothing_else_of_them(
    client: httpx.AsyncClient, session: AsyncSession, hook: Receiver
) -> None:
    m = await market(client, session)
    _, endpoint = await application(client, m.op.headers, hook.url, ["order.placed"])
    buyer = await client.get("/v1/me", headers=m.op.headers)
    order = await checkout(client, m.slug, [(m.variant, 1)], headers=m.op.headers)

    (event,) = await delivered_events(session, endpoint["id"])
    assert event.data["order_id"] == order["id"]
    assert event.data["buyer_account_id"] == buyer.json()["id"]
    assert_no_personal_data(event.data)


async def test_a_suppliers_events_never_reach_an_application(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    app_id, endpoint = await application(client, m.op.headers, "https://app.example.com/hooks")
    supply = m.suppliers[0]
    await api_key(client, supply.id, supply.owner.headers, ["supplier:read"])

    assert await delivered_types(session, endpoint["id"]) == []
    # Neither can subscribe to the other's events.
    refused = await client.post(
        f"{APPS}/{app_id}/webhook-endpoints",
        json={"url": "https://app.example.com/x", "event_types": ["supplier_order.paid"]},
        headers=m.op.headers,
    )
    problem = assert_problem(refused, 422, "event_type_not_available")
    assert problem["event_types"] == ["supplier_order.paid"]
    refused = await client.post(
        endpoints_url(supply.id),
        json={"url": "https://s.example.com/x", "event_types": ["commission.accrued"]},
        headers=supply.owner.headers,
    )
    assert_problem(refused, 422, "event_type_not_available")


async def test_a_disabled_application_receives_nothing_until_enabled(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    hook: Receiver,
) -> None:
    m = await market(client, session)
    app_id, endpoint = await application(client, m.op.headers, hook.url, ["order.placed"])
    await checkout(client, m.slug, [(m.variant, 1)])
    (queued,) = await deliveries(session, endpoint_id=endpoint["id"])
    assert queued.status is DeliveryStatus.pending

    off = await client.post(
        f"{APPS}/{app_id}/disable", json={"reason": "vendor change"}, headers=m.op.headers
    )
    assert off.status_code == 200, off.text
    assert off.json()["status"] == "disabled"
    (cancelled,) = await deliveries(session, endpoint_id=endpoint["id"])
    assert cancelled.status is DeliveryStatus.cancelled
    await checkout(client, m.slug, [(m.variant, 1)])
    assert len(await deliveries(session, endpoint_id=endpoint["id"])) == 1
    # A delivery queued by a transaction that raced the disabling is cancelled at its attempt.
    (event,) = (
        await session.scalars(select(Event).where(Event.type == "order.placed").limit(1))
    ).all()
    raced = WebhookDelivery(
        event_id=event.id, endpoint_id=uuid.UUID(endpoint["id"]), next_attempt_at=event.created_at
    )
    session.add(raced)
    await session.flush()
    assert await attempt(session, http, raced.id, 1) is None
    await session.flush()  # as the worker's commit would
    assert hook.requests == []
    (raced_now,) = [d for d in await deliveries(session, event_id=event.id) if d.id == raced.id]
    assert raced_now.status is DeliveryStatus.cancelled
    replay = await client.post(
        f"{APPS}/{app_id}/events/{event.id}/replay", json={}, headers=m.op.headers
    )
    assert_problem(replay, 409, "application_disabled")

    on = await client.post(f"{APPS}/{app_id}/enable", headers=m.op.headers)
    assert on.json()["status"] == "active"
    await checkout(client, m.slug, [(m.variant, 1)])
    made = await deliveries(session, endpoint_id=endpoint["id"])
    assert [d.status for d in made][-1] is DeliveryStatus.pending
    replayed = await client.post(
        f"{APPS}/{app_id}/events/{event.id}/replay", json={}, headers=m.op.headers
    )
    assert replayed.status_code == 202, replayed.text
    assert [d["endpoint_id"] for d in replayed.json()] == [endpoint["id"]]


async def test_a_supplier_sees_no_application_endpoint_or_event(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    app_id, endpoint = await application(client, m.op.headers, "https://app.example.com/hooks")
    supply = m.suppliers[0]
    theirs = await supplier_endpoint(client, m, "https://supplier.example.com/hooks")
    order = await checkout(client, m.slug, [(m.variant, 1)])
    await pay(client, order)
    shop_event = (
        await session.scalars(
            select(Event).where(
                Event.type == "order.paid", Event.owner_id == uuid.UUID(order["shop_id"])
            )
        )
    ).one()
    supplier_event = (
        await session.scalars(
            select(Event).where(
                Event.type == "supplier_order.paid", Event.owner_id == uuid.UUID(supply.id)
            )
        )
    ).one()
    owner = supply.owner.headers

    for path in ("", "/deliveries", "/attempts"):
        seen = await client.get(f"{endpoints_url(supply.id)}/{endpoint['id']}{path}", headers=owner)
        assert_problem(seen, 404, "webhook_endpoint_not_found")
    changed = await client.patch(
        f"{endpoints_url(supply.id)}/{endpoint['id']}", json={"enabled": False}, headers=owner
    )
    assert_problem(changed, 404, "webhook_endpoint_not_found")
    listed = await client.get(endpoints_url(supply.id), headers=owner)
    assert [e["id"] for e in listed.json()["items"]] == [theirs["id"]]
    replayed = await client.post(
        f"/v1/suppliers/{supply.id}/events/{shop_event.id}/replay", json={}, headers=owner
    )
    assert_problem(replayed, 404, "event_not_found")
    # ...nor an application a supplier's endpoint or event.
    op = m.op.headers
    seen = await client.get(f"{APPS}/{app_id}/webhook-endpoints/{theirs['id']}", headers=op)
    assert_problem(seen, 404, "webhook_endpoint_not_found")
    replayed = await client.post(
        f"{APPS}/{app_id}/events/{supplier_event.id}/replay", json={}, headers=op
    )
    assert_problem(replayed, 404, "event_not_found")
    # And the operator routes are the operators': a supplier's owner is refused.
    refused = await client.get(f"{APPS}/{app_id}/webhook-endpoints", headers=owner)
    assert_problem(refused, 403, "forbidden")
    refused = await client.get(f"{APPS}/{app_id}/webhook-endpoints", headers=supply.headers)
    assert refused.status_code in (401, 403), refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
