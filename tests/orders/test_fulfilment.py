"""Fulfilment, callbacks and returns: transitions, listings, cancels, refunds and completion."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from tests.catalogue.helpers import Actor, assert_problem
from tests.orders.helpers import (
    Headers,
    Supply,
    buyer_headers,
    checkout,
    events,
    key,
    market,
    pay,
    run_queued,
    run_schedule,
    supplier_act,
)
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.models import Shop
from xiaopu.orders.providers import CallbackKind, SandboxProvider

SHIP = {"carrier": "SF", "tracking_number": "SF1000000001"}
CANCEL = {"reason": "缺货"}
OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-secret-" * 2).decode()


# Helpers -----------------------------------------------------------------------------------


async def set_shipping(client: httpx.AsyncClient, supply: Supply, amount_minor: int) -> None:
    response = await client.put(
        f"/v1/suppliers/{supply.id}/shipping",
        json={"amount_minor": amount_minor, "currency": "CNY"},
        headers=supply.owner.headers,
    )
    assert response.status_code == 200, response.text


async def stock_of(client: httpx.AsyncClient, supply: Supply, index: int = 0) -> int:
    response = await client.get(
        f"/v1/suppliers/{supply.id}/products/{supply.products[index]}", headers=supply.headers
    )
    assert response.status_code == 200, response.text
    stock: int = response.json()["variants"][0]["stock"]
    return stock


async def supplier_order(client: httpx.AsyncClient, supply: Supply, part_id: str) -> dict[str, Any]:
    response = await client.get(
        f"/v1/suppliers/{supply.id}/orders/{part_id}", headers=supply.headers
    )
    assert response.status_code == 200, response.text
    part: dict[str, Any] = response.json()
    return part


async def buyer_view(client: httpx.AsyncClient, order: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/v1/orders/{order['id']}", headers=buyer_headers(order))
    assert response.status_code == 200, response.text
    seen: dict[str, Any] = response.json()
    return seen


def part_of(order: dict[str, Any], supply: Supply) -> dict[str, Any]:
    parts: list[dict[str, Any]] = order["supplier_orders"]
    (part,) = [p for p in parts if p["supplier_id"] == supply.id]
    return part


def line_for(order: dict[str, Any], variant_id: str) -> str:
    for part in order["supplier_orders"]:
        for line in part["lines"]:
            if line["variant_id"] == variant_id:
                line_id: str = line["id"]
                return line_id
    raise AssertionError(f"no line for {variant_id}")


async def paid_order(
    client: httpx.AsyncClient, slug: str, items: list[tuple[str, int]]
) -> dict[str, Any]:
    order = await checkout(client, slug, items)
    assert (await pay(client, order))["result"]["outcome"] == "applied"
    return order


async def deliver(
    client: httpx.AsyncClient, supply: Supply, part_id: str, tracking: str | None = None
) -> dict[str, Any]:
    shipment = {"carrier": "SF", "tracking_number": tracking or f"SF{part_id.replace('-', '')}"}
    shipped = await supplier_act(client, supply, part_id, "ship", shipment)
    assert shipped.status_code == 200, shipped.text
    delivered = await supplier_act(client, supply, part_id, "deliver")
    assert delivered.status_code == 200, delivered.text
    part: dict[str, Any] = delivered.json()
    return part


async def ask_return(
    client: httpx.AsyncClient, order: dict[str, Any], line_id: str, quantity: int
) -> httpx.Response:
    return await client.post(
        f"/v1/orders/{order['id']}/returns",
        json={"line_id": line_id, "quantity": quantity, "reason": "茶饼有破损"},
        headers=buyer_headers(order),
    )


async def asked(
    client: httpx.AsyncClient, order: dict[str, Any], line_id: str, quantity: int
) -> str:
    response = await ask_return(client, order, line_id, quantity)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "requested"
    return_id: str = response.json()["id"]
    return return_id


async def supplier_decides(
    client: httpx.AsyncClient,
    supply: Supply,
    return_id: str,
    action: str,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/v1/suppliers/{supply.id}/returns/{return_id}/{action}",
        json=body or {},
        headers={**supply.headers, **key()},
    )


async def operator_decides(
    client: httpx.AsyncClient, op: Actor, return_id: str, decision: str
) -> httpx.Response:
    return await client.post(
        f"/v1/operator/returns/{return_id}/decide",
        json={"decision": decision, "note": "平台裁定"},
        headers={**op.headers, **key()},
    )


def refused(response: httpx.Response, current_status: str) -> None:
    body = assert_problem(response, 409, "invalid_transition")
    assert body["current_status"] == current_status, body


def standard_signed(
    secret: str, body: dict[str, Any], *, msg_id: str | None = None, at: datetime | None = None
) -> tuple[Headers, bytes]:
    """Headers and body as a Standard Webhooks sender signs them."""
    raw = json.dumps(body)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    moment = at or datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, moment, raw),
    }
    return headers, raw.encode()


async def carrier_callback(
    client: httpx.AsyncClient, settings: Settings, body: dict[str, Any]
) -> httpx.Response:
    headers, raw = standard_signed(settings.carrier_callback_secret.get_secret_value(), body)
    return await client.post("/v1/carriers/callbacks", content=raw, headers=headers)


async def payment_callback(
    client: httpx.AsyncClient, headers: Headers, body: bytes
) -> httpx.Response:
    return await client.post("/v1/payments/sandbox/callbacks", content=body, headers=headers)


async def of_order(session: AsyncSession, event_type: str, order_id: str) -> list[dict[str, Any]]:
    return [e for e in await events(session, event_type) if e["order_id"] == order_id]


async def completed_of(session: AsyncSession, *part_ids: str) -> list[str]:
    """Which of these supplier orders have a supplier_order.completed event."""
    found = [e["supplier_order_id"] for e in await events(session, "supplier_order.completed")]
    return [p for p in found if p in part_ids]


# Transitions -------------------------------------------------------------------------------


async def test_invalid_transitions_are_refused_with_the_current_status(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=20)
    s = m.suppliers[0]
    order = await checkout(client, m.slug, [(m.variant, 1)])
    part = order["supplier_orders"][0]["id"]

    # Unpaid: there is nothing to fulfil yet.
    for action, body in [("accept", None), ("ship", SHIP), ("deliver", None), ("cancel", CANCEL)]:
        refused(await supplier_act(client, s, part, action, body), "pending_payment")
    await pay(client, order)

    refused(await supplier_act(client, s, part, "deliver"), "paid")  # deliver before ship
    accepted = await supplier_act(client, s, part, "accept")
    assert accepted.status_code == 200, accepted.text
    refused(await supplier_act(client, s, part, "accept"), "accepted")  # accept twice
    refused(await supplier_act(client, s, part, "deliver"), "accepted")
    shipped = await supplier_act(client, s, part, "ship", SHIP)
    assert shipped.status_code == 200, shipped.text
    for action, body in [("accept", None), ("ship", SHIP), ("cancel", CANCEL)]:
        refused(await supplier_act(client, s, part, action, body), "shipped")
    delivered = await supplier_act(client, s, part, "deliver")
    assert delivered.status_code == 200, delivered.text
    for action, body in [("accept", None), ("ship", SHIP), ("deliver", None), ("cancel", CANCEL)]:
        refused(await supplier_act(client, s, part, action, body), "delivered")
    assert (await supplier_order(client, s, part))["status"] == "delivered"

    # Cancelled: nothing more happens to it.
    other = await paid_order(client, m.slug, [(m.variant, 1)])
    other_part = other["supplier_orders"][0]["id"]
    cancelled = await supplier_act(client, s, other_part, "cancel", CANCEL)
    assert cancelled.status_code == 200, cancelled.text
    for action, body in [("accept", None), ("ship", SHIP), ("deliver", None), ("cancel", CANCEL)]:
        refused(await supplier_act(client, s, other_part, action, body), "cancelled")
    assert (await supplier_order(client, s, other_part))["status"] == "cancelled"


async def test_shipping_straight_from_paid_accepts_it_too(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    s = m.suppliers[0]
    order = await paid_order(client, m.slug, [(m.variant, 1)])
    part = order["supplier_orders"][0]["id"]
    shipped = await supplier_act(
        client, s, part, "ship", {"carrier": "YTO", "tracking_number": "YT9000000001"}
    )
    assert shipped.status_code == 200, shipped.text
    body = shipped.json()
    assert body["status"] == "shipped"
    assert body["carrier"] == "yto"
    assert body["accepted_at"] is not None
    assert body["shipped_at"] is not None
    (event,) = [
        e for e in await events(session, "supplier_order.shipped") if e["supplier_order_id"] == part
    ]
    assert event["tracking_number"] == "YT9000000001"


# Listing -----------------------------------------------------------------------------------


async def test_supplier_orders_filter_by_status_and_paginate(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=50)
    s = m.suppliers[0]
    orders = [await checkout(client, m.slug, [(m.variant, 1)]) for _ in range(5)]
    for order in orders[:4]:
        await pay(client, order)
    parts = [o["supplier_orders"][0]["id"] for o in orders]
    assert (await supplier_act(client, s, parts[1], "accept")).status_code == 200
    assert (await supplier_act(client, s, parts[2], "ship", SHIP)).status_code == 200
    url = f"/v1/suppliers/{s.id}/orders"

    async def ids(**params: Any) -> list[str]:
        response = await client.get(url, params=params, headers=s.headers)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["items"]]

    # Newest first; without a status, the unpaid one is not listed.
    assert await ids() == [parts[3], parts[2], parts[1], parts[0]]
    assert await ids(status="pending_payment") == [parts[4]]
    assert await ids(status="paid") == [parts[3], parts[0]]
    assert await ids(status="accepted") == [parts[1]]
    assert await ids(status="shipped") == [parts[2]]
    assert await ids(status="delivered") == []

    # Pages of two, following next_cursor to the end.
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=params, headers=s.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert seen == [parts[3], parts[2], parts[1], parts[0]]

    # A status filter paginates too.
    first = (await client.get(url, params={"status": "paid", "limit": 1}, headers=s.headers)).json()
    assert [p["id"] for p in first["items"]] == [parts[3]]
    rest = await client.get(
        url,
        params={"status": "paid", "limit": 1, "cursor": first["next_cursor"]},
        headers=s.headers,
    )
    assert [p["id"] for p in rest.json()["items"]] == [parts[0]]
    assert rest.json()["next_cursor"] is None

    bad = await client.get(url, params={"status": "lost"}, headers=s.headers)
    assert_problem(bad, 422, "validation_error")
    bad = await client.get(url, params={"limit": 0}, headers=s.headers)
    assert_problem(bad, 422, "validation_error")
    bad = await client.get(url, params={"cursor": "not a cursor!"}, headers=s.headers)
    assert_problem(bad, 400, "invalid_cursor")


# Cancelling --------------------------------------------------------------------------------


async def test_a_supplier_cancel_refunds_everything_with_shipping_and_restocks(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    m = await market(client, session, suppliers=2, price=10_000, stock=10)
    a, b = m.suppliers
    await set_shipping(client, a, 800)
    await set_shipping(client, b, 500)
    order = await paid_order(client, m.slug, [(a.variants[0], 2), (b.variants[0], 1)])
    assert order["total_minor"] == 2 * 11_000 + 800 + 11_000 + 500
    assert await stock_of(client, a) == 8
    a_part = part_of(order, a)["id"]
    b_part = part_of(order, b)["id"]
    assert (await supplier_act(client, a, a_part, "accept")).status_code == 200

    cancelled = await supplier_act(client, a, a_part, "cancel", CANCEL)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["cancel_reason"] == "缺货"
    assert body["cancelled_at"] is not None
    assert body["refunded_minor"] == 22_800 == body["total_minor"]
    assert [ln["returned_quantity"] for ln in body["lines"]] == [2]
    assert await stock_of(client, a) == 10  # back in stock
    assert await stock_of(client, b) == 9  # the other supplier's units stay sold
    (event,) = [
        e
        for e in await events(session, "supplier_order.cancelled")
        if e["supplier_order_id"] == a_part
    ]
    assert event["status"] == "cancelled"
    assert event["refunded_minor"] == 22_800

    # The refund goes out through the job; the other supplier's part carries on.
    assert await of_order(session, "refund.succeeded", order["id"]) == []
    assert await run_queued(session, settings) == 1
    (refund,) = await of_order(session, "refund.succeeded", order["id"])
    assert refund["supplier_order_id"] == a_part
    assert refund["reason"] == "supplier_cancelled"
    assert refund["status"] == "succeeded"
    assert refund["amount_minor"] == 22_800
    assert refund["shipping_minor"] == 800
    assert [(ln["quantity"], ln["amount_minor"]) for ln in refund["lines"]] == [(2, 22_000)]
    seen = await buyer_view(client, order)
    assert seen["status"] == "paid"
    assert seen["refunded_minor"] == 22_800
    statuses = {p["id"]: p["status"] for p in seen["supplier_orders"]}
    assert statuses == {a_part: "cancelled", b_part: "paid"}
    assert (await supplier_act(client, b, b_part, "accept")).status_code == 200

    # Cancelling again refunds nothing more.
    refused(await supplier_act(client, a, a_part, "cancel", CANCEL), "cancelled")
    assert await run_queued(session, settings) == 0
    assert (await buyer_view(client, order))["refunded_minor"] == 22_800


# Carrier callbacks -------------------------------------------------------------------------


async def test_a_signed_carrier_callback_marks_the_shipment_delivered(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    m = await market(client, session, return_window_days=7)
    s = m.suppliers[0]
    order = await paid_order(client, m.slug, [(m.variant, 1)])
    part = order["supplier_orders"][0]["id"]
    shipment = {"carrier": "SF", "tracking_number": "SF7777000011"}
    assert (await supplier_act(client, s, part, "ship", shipment)).status_code == 200

    notice = {**shipment, "status": "delivered"}
    response = await carrier_callback(client, settings, notice)
    assert response.status_code == 200, response.text
    assert response.json() == {"supplier_order_ids": [part]}
    seen = await supplier_order(client, s, part)
    assert seen["status"] == "delivered"
    delivered_at = datetime.fromisoformat(seen["delivered_at"])
    assert datetime.fromisoformat(seen["return_closes_at"]) - delivered_at == timedelta(days=7)

    # A repeat (carriers retry) changes nothing and emits nothing more.
    again = await carrier_callback(client, settings, {**notice, "carrier": "sf"})
    assert again.status_code == 200, again.text
    assert (await supplier_order(client, s, part))["delivered_at"] == seen["delivered_at"]
    delivered = [
        e
        for e in await events(session, "supplier_order.delivered")
        if e["supplier_order_id"] == part
    ]
    assert len(delivered) == 1


async def test_carrier_callbacks_that_are_forged_or_unknown_change_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    m = await market(client, session)
    s = m.suppliers[0]
    order = await paid_order(client, m.slug, [(m.variant, 1)])
    part = order["supplier_orders"][0]["id"]
    shipment = {"carrier": "SF", "tracking_number": "SF8888000022"}
    assert (await supplier_act(client, s, part, "ship", shipment)).status_code == 200
    notice = {**shipment, "status": "delivered"}
    url = "/v1/carriers/callbacks"

    # Signed with another secret (the payment provider's, or a made-up one).
    for secret in (settings.payment_callback_secret.get_secret_value(), OTHER_SECRET):
        headers, raw = standard_signed(secret, notice)
        forged = await client.post(url, content=raw, headers=headers)
        assert_problem(forged, 401, "invalid_callback_signature")
    # A genuine signature over another body.
    headers, _ = standard_signed(settings.carrier_callback_secret.get_secret_value(), notice)
    swapped = json.dumps({**notice, "tracking_number": "SF0000000000"}).encode()
    assert_problem(
        await client.post(url, content=swapped, headers=headers), 401, "invalid_callback_signature"
    )
    # A genuine signature, but too old to be accepted (a replay from long ago).
    headers, raw = standard_signed(
        settings.carrier_callback_secret.get_secret_value(),
        notice,
        at=datetime.now(UTC) - timedelta(hours=1),
    )
    assert_problem(
        await client.post(url, content=raw, headers=headers), 401, "invalid_callback_signature"
    )
    # No signature at all.
    assert_problem(await client.post(url, json=notice), 401, "invalid_callback_signature")
    assert (await supplier_order(client, s, part))["status"] == "shipped"

    # Signed, but for a shipment nobody made, or by another carrier.
    unknown = await carrier_callback(client, settings, {**notice, "tracking_number": "SF404404"})
    assert_problem(unknown, 404, "shipment_not_found")
    other_carrier = await carrier_callback(client, settings, {**notice, "carrier": "yto"})
    assert_problem(other_carrier, 404, "shipment_not_found")
    # Signed, but not a delivery.
    lost = await carrier_callback(client, settings, {**notice, "status": "lost"})
    assert_problem(lost, 422, "validation_error")
    assert (await supplier_order(client, s, part))["status"] == "shipped"


# Payment callbacks -------------------------------------------------------------------------


async def test_a_forged_payment_callback_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    sandbox = SandboxProvider(settings)
    callback = sandbox.new_callback(
        CallbackKind.paid,
        payment_ref=order["payment"]["provider_ref"],
        amount_minor=order["total_minor"],
        currency="CNY",
    )
    body = callback.model_dump(mode="json", exclude_none=True)

    # Signed with a secret that is not the provider's.
    headers, raw = standard_signed(OTHER_SECRET, body, msg_id=callback.event_id)
    assert_problem(await payment_callback(client, headers, raw), 401, "invalid_callback_signature")
    # The provider's signature, over a body with another amount.
    headers, raw = sandbox.sign_callback(callback)
    tampered = json.dumps({**json.loads(raw), "amount_minor": 1}).encode()
    assert_problem(
        await payment_callback(client, headers, tampered), 401, "invalid_callback_signature"
    )
    # Validly signed, but under another message id than the body's event id.
    headers, raw = standard_signed(settings.payment_callback_secret.get_secret_value(), body)
    assert_problem(await payment_callback(client, headers, raw), 401, "invalid_callback_signature")
    # Nothing signed at all.
    assert_problem(
        await client.post("/v1/payments/sandbox/callbacks", json=body),
        401,
        "invalid_callback_signature",
    )

    seen = await buyer_view(client, order)
    assert seen["status"] == "pending_payment"
    assert seen["payment"]["status"] == "pending"
    # The genuine callback still applies.
    headers, raw = sandbox.sign_callback(callback)
    applied = await payment_callback(client, headers, raw)
    assert applied.status_code == 200, applied.text
    assert applied.json() == {"outcome": "applied"}
    assert (await buyer_view(client, order))["status"] == "paid"


async def test_a_replayed_payment_callback_is_a_duplicate(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    paid = await pay(client, order)
    assert paid["result"] == {"outcome": "applied"}
    sent = paid["callback"]

    for _ in range(2):
        replay = await payment_callback(client, sent["headers"], sent["body"].encode())
        assert replay.status_code == 200, replay.text
        assert replay.json() == {"outcome": "duplicate"}
    # A new event saying the same thing is recognised as already applied.
    again = await pay(client, order)
    assert again["result"] == {"outcome": "already_paid"}

    assert (await buyer_view(client, order))["status"] == "paid"
    assert len(await of_order(session, "order.paid", order["id"])) == 1
    assert len(await of_order(session, "supplier_order.paid", order["id"])) == 1


async def test_a_callback_for_another_amount_or_currency_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 2)])
    sandbox = SandboxProvider(settings)
    ref = order["payment"]["provider_ref"]
    for amount, currency in [(order["total_minor"] - 1, "CNY"), (order["total_minor"], "USD")]:
        callback = sandbox.new_callback(
            CallbackKind.paid, payment_ref=ref, amount_minor=amount, currency=currency
        )
        headers, raw = sandbox.sign_callback(callback)
        response = await payment_callback(client, headers, raw)
        assert_problem(response, 422, "payment_mismatch")
    seen = await buyer_view(client, order)
    assert seen["status"] == "pending_payment"
    assert seen["payment"]["status"] == "pending"
    assert await of_order(session, "order.paid", order["id"]) == []

    # A callback for a payment we never opened.
    callback = sandbox.new_callback(
        CallbackKind.paid, payment_ref="sbx_pay_nope", amount_minor=100, currency="CNY"
    )
    headers, raw = sandbox.sign_callback(callback)
    assert_problem(await payment_callback(client, headers, raw), 404, "payment_not_found")

    assert (await pay(client, order))["result"] == {"outcome": "applied"}


async def test_a_failed_payment_then_a_paid_one_pays_the_order(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])

    failed = await pay(client, order, "failed")
    assert failed["result"] == {"outcome": "payment_failed"}
    seen = await buyer_view(client, order)
    assert seen["status"] == "pending_payment"
    assert seen["payment"]["status"] == "failed"
    assert seen["supplier_orders"][0]["status"] == "pending_payment"
    assert await of_order(session, "order.paid", order["id"]) == []

    paid = await pay(client, order)
    assert paid["result"] == {"outcome": "applied"}
    seen = await buyer_view(client, order)
    assert seen["status"] == "paid"
    assert seen["payment"]["status"] == "paid"
    assert seen["payment"]["paid_at"] is not None
    assert seen["supplier_orders"][0]["status"] == "paid"

    # A late failure does not undo the payment.
    late = await pay(client, order, "failed")
    assert late["result"] == {"outcome": "ignored_already_paid"}
    assert (await buyer_view(client, order))["payment"]["status"] == "paid"
    assert len(await of_order(session, "order.paid", order["id"])) == 1


# Returns -----------------------------------------------------------------------------------


async def test_partial_returns_up_to_the_quantity_refund_shipping_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    m = await market(client, session, products=2, price=10_000, stock=10)
    s = m.suppliers[0]
    await set_shipping(client, s, 800)
    v0, v1 = s.variants
    order = await paid_order(client, m.slug, [(v0, 2), (v1, 1)])
    assert order["total_minor"] == 3 * 11_000 + 800
    part = order["supplier_orders"][0]["id"]
    await deliver(client, s, part)
    line0, line1 = line_for(order, v0), line_for(order, v1)

    # Line 0 in two parts of one unit each, then nothing more of it.
    first = await asked(client, order, line0, 1)
    second = await asked(client, order, line0, 1)
    over = await ask_return(client, order, line0, 1)
    assert assert_problem(over, 409, "return_exceeds_quantity")["returnable"] == 0
    assert_problem(await ask_return(client, order, line1, 2), 409, "return_exceeds_quantity")
    third = await asked(client, order, line1, 1)

    refunds: list[dict[str, Any]] = []
    for return_id, restock in [(first, True), (second, False), (third, False)]:
        approved = await supplier_decides(client, s, return_id, "approve", {"restock": restock})
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        assert approved.json()["decided_by"] == "supplier"
        refunds.append(approved.json()["refund"])
    # Shipping goes back with the last unit, and only then.
    assert [(r["amount_minor"], r["shipping_minor"]) for r in refunds] == [
        (11_000, 0),
        (11_000, 0),
        (11_800, 800),
    ]
    assert {r["status"] for r in refunds} == {"pending"}
    assert await stock_of(client, s, 0) == 10 - 2 + 1  # only the first was restocked
    assert await stock_of(client, s, 1) == 10 - 1

    assert await run_queued(session, settings) == 3
    succeeded = await of_order(session, "refund.succeeded", order["id"])
    assert sum(r["shipping_minor"] for r in succeeded) == 800
    assert sum(r["amount_minor"] for r in succeeded) == order["total_minor"]
    seen = await buyer_view(client, order)
    assert seen["refunded_minor"] == order["total_minor"]
    assert [ln["returned_quantity"] for ln in seen["supplier_orders"][0]["lines"]] in (
        [2, 1],
        [1, 2],
    )
    assert (await supplier_order(client, s, part))["refunded_minor"] == order["total_minor"]
    listed = await client.get(f"/v1/orders/{order['id']}/returns", headers=buyer_headers(order))
    assert {r["status"] for r in listed.json()} == {"refunded"}
    assert {r["refund"]["status"] for r in listed.json()} == {"succeeded"}

    # Everything is back: nothing more to return.
    for line_id in (line0, line1):
        assert_problem(await ask_return(client, order, line_id, 1), 409, "return_exceeds_quantity")


async def test_an_operator_overrules_a_suppliers_rejection_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    m = await market(client, session, price=10_000)
    s = m.suppliers[0]
    await set_shipping(client, s, 500)
    order = await paid_order(client, m.slug, [(m.variant, 2)])
    part = order["supplier_orders"][0]["id"]
    await deliver(client, s, part)
    return_id = await asked(client, order, line_for(order, m.variant), 2)

    rejected = await supplier_decides(client, s, return_id, "reject", {"note": "人为损坏"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decided_by"] == "supplier"
    assert rejected.json()["decision_note"] == "人为损坏"
    assert rejected.json()["refund"] is None
    for action in ("approve", "reject"):  # the supplier has decided
        again = await supplier_decides(client, s, return_id, action)
        assert assert_problem(again, 409, "return_already_decided")["current_status"] == "rejected"

    returns_url = f"/v1/suppliers/{s.id}/returns"
    by_status = await client.get(returns_url, params={"status": "rejected"}, headers=s.headers)
    assert [r["id"] for r in by_status.json()["items"]] == [return_id]
    by_status = await client.get(returns_url, params={"status": "requested"}, headers=s.headers)
    assert by_status.json()["items"] == []
    listed = await client.get(
        "/v1/operator/returns", params={"status": "rejected"}, headers=m.op.headers
    )
    assert return_id in [r["id"] for r in listed.json()["items"]]

    approved = await operator_decides(client, m.op, return_id, "approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["decided_by"] == "operator"
    assert body["refund"]["amount_minor"] == 2 * 11_000 + 500  # every unit back: shipping too
    assert body["refund"]["shipping_minor"] == 500
    assert body["refund"]["reason"] == "return_approved"

    # Decided: neither the operator nor the supplier can decide it again.
    for decision in ("approve", "reject"):
        twice = await operator_decides(client, m.op, return_id, decision)
        assert assert_problem(twice, 409, "return_already_decided")["current_status"] == "approved"
    assert_problem(
        await supplier_decides(client, s, return_id, "approve"), 409, "return_already_decided"
    )

    assert await run_queued(session, settings) == 1
    listed = await client.get(f"/v1/orders/{order['id']}/returns", headers=buyer_headers(order))
    (only,) = listed.json()
    assert only["status"] == "refunded"
    assert only["refund"]["status"] == "succeeded"
    assert (await buyer_view(client, order))["refunded_minor"] == order["total_minor"]
    after = await operator_decides(client, m.op, return_id, "approve")
    assert assert_problem(after, 409, "return_already_decided")["current_status"] == "refunded"
    assert await run_queued(session, settings) == 0


async def test_an_operator_decides_an_open_return(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    s = m.suppliers[0]
    order = await paid_order(client, m.slug, [(m.variant, 3)])
    await deliver(client, s, order["supplier_orders"][0]["id"])
    line = line_for(order, m.variant)
    return_id = await asked(client, order, line, 3)
    rejected = await operator_decides(client, m.op, return_id, "reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["decided_by"] == "operator"
    # An operator's own rejection is final for the supplier ...
    assert_problem(
        await supplier_decides(client, s, return_id, "approve"), 409, "return_already_decided"
    )
    # ... and the units it held can be asked for again.
    assert await asked(client, order, line, 3)


async def test_no_return_before_delivery(client: httpx.AsyncClient, session: AsyncSession) -> None:
    m = await market(client, session)
    s = m.suppliers[0]
    order = await checkout(client, m.slug, [(m.variant, 2)])
    part = order["supplier_orders"][0]["id"]
    line = line_for(order, m.variant)

    def not_delivered(response: httpx.Response, current_status: str) -> None:
        body = assert_problem(response, 409, "not_delivered")
        assert body["current_status"] == current_status

    not_delivered(await ask_return(client, order, line, 1), "pending_payment")
    await pay(client, order)
    not_delivered(await ask_return(client, order, line, 1), "paid")
    assert (await supplier_act(client, s, part, "accept")).status_code == 200
    not_delivered(await ask_return(client, order, line, 1), "accepted")
    assert (await supplier_act(client, s, part, "ship", SHIP)).status_code == 200
    not_delivered(await ask_return(client, order, line, 1), "shipped")
    listed = await client.get(f"/v1/orders/{order['id']}/returns", headers=buyer_headers(order))
    assert listed.json() == []

    cancelled = await paid_order(client, m.slug, [(m.variant, 1)])
    cancel = await supplier_act(client, s, cancelled["supplier_orders"][0]["id"], "cancel", CANCEL)
    assert cancel.status_code == 200, cancel.text
    not_delivered(
        await ask_return(client, cancelled, line_for(cancelled, m.variant), 1), "cancelled"
    )


async def test_open_returns_hold_completion_and_rejected_ones_do_not(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session, stock=20, return_window_days=7)
    s = m.suppliers[0]
    # x: its return is rejected; y: its return stays open; z: fully returned and approved.
    x, y, z = [await paid_order(client, m.slug, [(m.variant, 1)]) for _ in range(3)]
    px, py, pz = (o["supplier_orders"][0]["id"] for o in (x, y, z))
    test_clock.freeze(test_clock.now())
    for part in (px, py, pz):
        await deliver(client, s, part)
    test_clock.advance(timedelta(days=1))
    rx = await asked(client, x, line_for(x, m.variant), 1)
    ry = await asked(client, y, line_for(y, m.variant), 1)
    rz = await asked(client, z, line_for(z, m.variant), 1)
    assert (await supplier_decides(client, s, rx, "reject")).status_code == 200
    assert (await supplier_decides(client, s, rz, "approve")).status_code == 200

    async def statuses() -> list[str]:
        return [(await supplier_order(client, s, p))["status"] for p in (px, py, pz)]

    # Before the window closes nothing completes.
    await run_schedule(session, settings, "orders.complete")
    assert await statuses() == ["delivered"] * 3

    # The window closes: x completes; y's open return holds it, and z's refund is on its way.
    test_clock.advance(timedelta(days=6, seconds=1))
    await run_schedule(session, settings, "orders.complete")
    assert await statuses() == ["completed", "delivered", "delivered"]
    assert await completed_of(session, px, py, pz) == [px]
    late = await ask_return(client, x, line_for(x, m.variant), 1)
    assert late.status_code == 409
    assert late.json()["code"] in {"not_delivered", "return_window_closed"}

    # y's return is rejected, z's refund goes through: both complete at the next run.
    assert (await supplier_decides(client, s, ry, "reject")).status_code == 200
    assert await run_queued(session, settings) == 1
    await run_schedule(session, settings, "orders.complete")
    assert await statuses() == ["completed"] * 3
    assert sorted(await completed_of(session, px, py, pz)) == sorted([px, py, pz])
    # x and y were kept (their returns rejected): two sales; z came back whole: none.
    sales = await session.scalar(select(Shop.completed_sales).where(Shop.slug == m.slug))
    assert sales == 2
