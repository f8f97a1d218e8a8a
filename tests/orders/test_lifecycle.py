"""A whole order through the API: checkout, pay, accept, ship, deliver, return, refund, complete."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.orders.helpers import (
    ask_to_pay,
    buyer_headers,
    checkout,
    events,
    key,
    market,
    run_queued,
    run_schedule,
    supplier_act,
)
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.models import Shop


async def test_checkout_to_completion_with_a_partial_return(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session, price=10_000, stock=10, return_window_days=7)
    supply = m.suppliers[0]
    shipping = await client.put(
        f"/v1/suppliers/{supply.id}/shipping",
        json={"amount_minor": 800, "currency": "CNY"},
        headers=supply.owner.headers,
    )
    assert shipping.status_code == 200, shipping.text

    # A guest orders 3 units at the shop's price: 10,000 + 10% markup = 11,000 each.
    order = await checkout(client, m.slug, [(m.variant, 3)])
    assert order["status"] == "pending_payment"
    assert order["items_minor"] == 33_000
    assert order["shipping_minor"] == 800
    assert order["total_minor"] == 33_800
    assert order["access_token"].startswith("xpo_")
    (part,) = order["supplier_orders"]
    assert part["status"] == "pending_payment"
    (line,) = part["lines"]
    assert line["unit_price_minor"] == 11_000
    # The provider is asked only once the buyer asks to pay, and opens the payment filed
    # under our reference.
    assert order["payment"]["pay_url"] is None
    asked = await ask_to_pay(client, order)
    assert asked.status_code == 200, asked.text
    payment = asked.json()
    assert (
        payment["provider_ref"] == order["payment"]["provider_ref"] == order["id"].replace("-", "")
    )
    pay_url = urlsplit(payment["pay_url"])
    assert pay_url.path == f"/v1/sandbox/payments/{payment['provider_ref']}/pay"

    paid = await client.post(pay_url.path, json={"outcome": "paid"})
    assert paid.status_code == 200, paid.text
    assert paid.json()["result"]["outcome"] == "applied"
    guest = buyer_headers(order)
    seen = (await client.get(f"/v1/orders/{order['id']}", headers=guest)).json()
    assert seen["status"] == "paid"
    assert seen["supplier_orders"][0]["status"] == "paid"
    assert len(await events(session, "supplier_order.paid")) == 1

    listed = await client.get(f"/v1/suppliers/{supply.id}/orders", headers=supply.headers)
    assert [p["id"] for p in listed.json()["items"]] == [part["id"]]
    assert listed.json()["items"][0]["address"]["recipient"] == "王小明"

    accepted = await supplier_act(client, supply, part["id"], "accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    shipped = await supplier_act(
        client, supply, part["id"], "ship", {"carrier": "SF", "tracking_number": "SF1234567890"}
    )
    assert shipped.json()["status"] == "shipped"
    seen = (await client.get(f"/v1/orders/{order['id']}", headers=guest)).json()
    assert seen["supplier_orders"][0]["tracking_number"] == "SF1234567890"
    assert seen["supplier_orders"][0]["carrier"] == "sf"

    test_clock.freeze(test_clock.now())
    delivered = await supplier_act(client, supply, part["id"], "deliver")
    assert delivered.json()["status"] == "delivered"
    assert delivered.json()["return_closes_at"] is not None

    # Two days later the buyer returns one unit; the supplier approves and restocks.
    test_clock.advance(timedelta(days=2))
    asked = await client.post(
        f"/v1/orders/{order['id']}/returns",
        json={"line_id": line["id"], "quantity": 1, "reason": "茶饼有破损"},
        headers=guest,
    )
    assert asked.status_code == 201, asked.text
    assert asked.json()["status"] == "requested"
    # The window has not closed, and the open return would hold completion anyway.
    await run_schedule(session, settings, "orders.complete")
    approved = await client.post(
        f"/v1/suppliers/{supply.id}/returns/{asked.json()['id']}/approve",
        json={"restock": True, "note": "ok"},
        headers={**supply.headers, **key()},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    refund = approved.json()["refund"]
    assert refund["amount_minor"] == 11_000  # one unit, markup included, no shipping
    assert refund["shipping_minor"] == 0
    assert refund["status"] == "pending"

    assert await run_queued(session, settings) == 1
    returns = (await client.get(f"/v1/orders/{order['id']}/returns", headers=guest)).json()
    assert returns[0]["status"] == "refunded"
    assert returns[0]["refund"]["status"] == "succeeded"
    seen = (await client.get(f"/v1/orders/{order['id']}", headers=guest)).json()
    assert seen["refunded_minor"] == 11_000
    assert seen["supplier_orders"][0]["lines"][0]["returned_quantity"] == 1
    assert len(await events(session, "refund.succeeded")) == 1
    stock = await client.get(
        f"/v1/suppliers/{supply.id}/products/{supply.products[0]}", headers=supply.headers
    )
    assert stock.json()["variants"][0]["stock"] == 10 - 3 + 1

    # The window closes (7 days after delivery): the completion job completes it.
    test_clock.advance(timedelta(days=5, seconds=1))
    await run_schedule(session, settings, "orders.complete")
    final = await client.get(
        f"/v1/suppliers/{supply.id}/orders/{part['id']}", headers=supply.headers
    )
    assert final.json()["status"] == "completed"
    (completed,) = await events(session, "supplier_order.completed")
    assert completed["supplier_order_id"] == part["id"]
    # (The keeper's access token has expired by now: read the shop directly.)
    sales = await session.scalar(select(Shop.completed_sales).where(Shop.slug == m.slug))
    assert sales == 1

    # Nothing more can be returned once the window has closed.
    late = await client.post(
        f"/v1/orders/{order['id']}/returns",
        json={"line_id": line["id"], "quantity": 1, "reason": "late"},
        headers=guest,
    )
    assert late.status_code == 409
    assert late.json()["code"] == "return_window_closed"
