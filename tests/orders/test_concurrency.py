"""Real races: buyers fighting for the last units, and a payment callback arriving 100 times."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tests.catalogue.helpers import add_to_shop, new_actor, open_shop
from tests.orders.conftest import Live
from tests.orders.helpers import ADDRESS, checkout, market, place
from tests.webhooks.helpers import new_endpoint
from xiaopu.ledger import service as ledger
from xiaopu.models import Payment, PaymentCallback, Variant
from xiaopu.orders.providers import CallbackKind, SandboxProvider

pytestmark = pytest.mark.concurrent


def _guest_address(i: int) -> dict[str, str]:
    return {**ADDRESS, "phone": f"1380013{i:04d}", "recipient": f"买家{i}"}


async def test_twenty_buyers_race_for_the_last_five_units(live: Live) -> None:
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=5)
    responses = await asyncio.gather(
        *(
            place(live.client, m.slug, [(m.variant, 1)], address=_guest_address(i))
            for i in range(20)
        )
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 5, 409: 15}, [r.text for r in responses if r.status_code >= 500]
    for refused in (r for r in responses if r.status_code == 409):
        body = refused.json()
        assert body["code"] == "out_of_stock"
        assert body["line"] == 0
    async with live.sessionmaker() as session:
        stock = await session.scalar(select(Variant.stock).where(Variant.id == m.variant))
        sold = await session.scalar(text("SELECT coalesce(sum(quantity), 0) FROM order_lines"))
    assert stock == 0
    assert sold == 5


async def test_orders_naming_shared_variants_in_opposite_orders_do_not_deadlock(
    live: Live,
) -> None:
    """Checkout locks and takes stock in one statement; the locks are taken in variant order
    whatever order the lines come in, so crossed orders queue instead of deadlocking."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=100, products=2)
    a, b = m.suppliers[0].variants
    responses = await asyncio.gather(
        *(
            place(
                live.client,
                m.slug,
                [(a, 1), (b, 2)] if i % 2 else [(b, 2), (a, 1)],
                address=_guest_address(i),
            )
            for i in range(24)
        )
    )
    assert [r.status_code for r in responses] == [201] * 24, [
        r.text for r in responses if r.status_code != 201
    ]
    async with live.sessionmaker() as session:
        rows = await session.execute(
            select(Variant.id, Variant.stock).where(Variant.id.in_([a, b]))
        )
        stocks = {str(variant_id): stock for variant_id, stock in rows}
    assert stocks == {a: 100 - 24, b: 100 - 48}


async def test_a_checkout_waiting_on_a_stock_change_sees_the_new_stock(live: Live) -> None:
    """The supplier sets the stock to 0 while a checkout waits on the variant's lock: once the
    change commits, the checkout reads the new stock and is refused, and nothing is taken."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=3)
    async with live.sessionmaker() as supplier, supplier.begin():
        await supplier.execute(
            text("UPDATE variants SET stock = 0 WHERE id = :id"), {"id": m.variant}
        )
        pending = asyncio.create_task(place(live.client, m.slug, [(m.variant, 1)]))
        await asyncio.sleep(0.5)
        assert not pending.done()  # queued on the variant's lock
    response = await pending
    assert response.status_code == 409, response.text
    body = response.json()
    assert (body["code"], body["line"], body["available"]) == ("out_of_stock", 0, 0)
    async with live.sessionmaker() as session:
        assert await session.scalar(select(Variant.stock).where(Variant.id == m.variant)) == 0
        assert await session.scalar(text("SELECT count(*) FROM orders")) == 0


async def _events(live: Live, event_type: str) -> int:
    async with live.sessionmaker() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM events WHERE type = :t"), {"t": event_type}
        )
    return int(count or 0)


async def test_one_hundred_identical_callbacks_apply_once(live: Live) -> None:
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=5)
    order = await checkout(live.client, m.slug, [(m.variant, 2)])
    sandbox = SandboxProvider(live.settings)
    callback = sandbox.new_callback(
        CallbackKind.paid,
        payment_ref=order["payment"]["provider_ref"],
        amount_minor=order["total_minor"],
        currency=order["currency"],
    )
    headers, body = sandbox.sign_callback(callback)

    responses = await asyncio.gather(
        *(
            live.client.post("/v1/payments/sandbox/callbacks", content=body, headers=headers)
            for _ in range(100)
        )
    )
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses][:3]
    outcomes = Counter(r.json()["outcome"] for r in responses)
    assert outcomes == {"applied": 1, "duplicate": 99}
    async with live.sessionmaker() as session:
        recorded = await session.scalar(select(func.count()).select_from(PaymentCallback))
        payment = (await session.scalars(select(Payment))).one()
    assert recorded == 1
    assert payment.status == "paid"
    assert await _events(live, "order.paid") == 1
    assert await _events(live, "supplier_order.paid") == 1


async def test_a_payment_reported_under_many_event_ids_is_paid_once(live: Live) -> None:
    """Providers may resend a payment as new events: each is recorded, the money moves once."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=5)
    order = await checkout(live.client, m.slug, [(m.variant, 1)])
    sandbox = SandboxProvider(live.settings)
    signed = []
    for _ in range(30):
        callback = sandbox.new_callback(
            CallbackKind.paid,
            payment_ref=order["payment"]["provider_ref"],
            amount_minor=order["total_minor"],
            currency=order["currency"],
        )
        signed.append(sandbox.sign_callback(callback))
    responses = await asyncio.gather(
        *(
            live.client.post("/v1/payments/sandbox/callbacks", content=b, headers=h)
            for h, b in signed
        )
    )
    outcomes = Counter(r.json()["outcome"] for r in responses)
    assert outcomes == {"applied": 1, "already_paid": 29}, outcomes
    assert await _events(live, "order.paid") == 1
    async with live.sessionmaker() as session:
        stored = (await session.execute(text("SELECT outcome FROM payment_callbacks"))).all()
    assert Counter(o for (o,) in stored) == {"applied": 1, "already_paid": 29}
    assert json.loads(signed[0][1])["kind"] == "paid"


async def test_payments_of_multi_supplier_orders_do_not_deadlock(live: Live) -> None:
    """Two shops' orders name two suppliers in opposite orders; paid all at once, each posting
    locks the same shop and supplier accounts. They must queue, not deadlock."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, suppliers=2, stock=1000, price=1000)
    p1, p2 = m.suppliers
    keeper_b = await new_actor(live.client)
    shop_b = await open_shop(live.client, keeper_b.headers)
    for supply in (p1, p2):
        added = await add_to_shop(live.client, keeper_b.headers, supply.products[0])
        assert added.status_code == 201, added.text
    forward = [(p1.variants[0], 1), (p2.variants[0], 1)]
    backward = [(p2.variants[0], 1), (p1.variants[0], 1)]
    orders = []
    for _ in range(30):
        orders.append(await checkout(live.client, m.slug, forward))
        orders.append(await checkout(live.client, shop_b["slug"], backward))
    sandbox = SandboxProvider(live.settings)

    async def paid(order: dict[str, Any]) -> httpx.Response:
        callback = sandbox.new_callback(
            CallbackKind.paid,
            payment_ref=order["payment"]["provider_ref"],
            amount_minor=order["total_minor"],
            currency=order["currency"],
        )
        headers, body = sandbox.sign_callback(callback)
        return await live.client.post(
            "/v1/payments/sandbox/callbacks", content=body, headers=headers
        )

    responses = await asyncio.gather(*(paid(o) for o in orders))
    assert Counter(r.status_code for r in responses) == {200: 60}, [
        r.text for r in responses if r.status_code != 200
    ][:2]
    async with live.sessionmaker() as session:
        assert await ledger.reconcile(session) == 0


async def test_twins_with_one_key_place_one_order_and_the_others_replay_it(live: Live) -> None:
    """Checkout commits as one statement without holding its key in flight: twins that run at
    once both do the work, the one that stores the key first keeps its order, and the others'
    statements keep nothing and are run again, replaying it."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=100)
    headers = {"Idempotency-Key": "twins-1"}
    responses = await asyncio.gather(
        *(place(live.client, m.slug, [(m.variant, 2)], headers=headers) for _ in range(12))
    )
    assert [r.status_code for r in responses] == [201] * 12, [r.text for r in responses]
    originals = [r for r in responses if "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1
    assert {r.json()["id"] for r in responses} == {originals[0].json()["id"]}
    async with live.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM orders")) == 1
        assert await session.scalar(select(Variant.stock).where(Variant.id == m.variant)) == 98
        assert await session.scalar(text("SELECT count(*) FROM events")) >= 1
        placed = await session.scalar(
            text("SELECT count(*) FROM events WHERE type = 'order.placed'")
        )
    assert placed == 1


async def test_an_order_taking_stock_below_the_threshold_notifies_the_suppliers_endpoint(
    live: Live,
) -> None:
    """The one statement finds a continuation with work to do (product.stock_low, to an
    endpoint): it writes nothing, and the order is placed again inside a transaction, with its
    event and delivery."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=10)
    supply = m.suppliers[0]
    endpoint = await new_endpoint(
        live.client, supply.id, supply.owner.headers, event_types=["product.stock_low"]
    )
    async with live.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE variants SET low_stock_threshold = 5 WHERE id = :id"), {"id": m.variant}
        )

    order = await checkout(live.client, m.slug, [(m.variant, 6)])

    async with live.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM orders")) == 1
        assert await session.scalar(select(Variant.stock).where(Variant.id == m.variant)) == 4
        (low,) = (
            await session.execute(
                text("SELECT id, data FROM events WHERE type = 'product.stock_low'")
            )
        ).all()
        assert (low.data["stock"], low.data["threshold"]) == (4, 5)
        deliveries = await session.scalar(
            text(
                "SELECT count(*) FROM webhook_deliveries WHERE event_id = :e AND endpoint_id = :p"
            ),
            {"e": low.id, "p": endpoint["id"]},
        )
        placed = await session.scalar(
            text("SELECT count(*) FROM events WHERE type = 'order.placed'")
        )
    assert deliveries == 1
    assert placed == 1
    assert order["total_minor"] > 0


async def test_a_checkout_is_one_read_and_one_write(live: Live, statements: list[str]) -> None:
    """Its reads go together, its writes as the one statement that commits it: no BEGIN, no
    COMMIT, and no run again in a full unit of work."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=10)
    statements.clear()

    await checkout(live.client, m.slug, [(m.variant, 1)])

    sent = [s for s in statements if s != "SELECT 1"]  # a pooled connection idle a while is pinged
    assert len(sent) == 2, sent
    assert sent[0].startswith("SELECT ARRAY(")
    assert sent[1].startswith("WITH deferred_0 AS (")


async def test_a_checkout_waiting_on_a_price_change_orders_at_the_new_price(live: Live) -> None:
    """Checkout reads without locks; its write waits on the supplier's change of the variant,
    finds the price no longer the one it read, writes nothing, and checkout runs again."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=5)
    async with live.sessionmaker() as supplier, supplier.begin():
        await supplier.execute(
            text("UPDATE variants SET price_minor = 20000 WHERE id = :id"), {"id": m.variant}
        )
        pending = asyncio.create_task(place(live.client, m.slug, [(m.variant, 1)]))
        await asyncio.sleep(0.5)
        assert not pending.done()  # read the old price, and queued on the variant's lock
    response = await pending
    assert response.status_code == 201, response.text
    (line,) = response.json()["supplier_orders"][0]["lines"]
    again = await checkout(live.client, m.slug, [(m.variant, 1)])
    assert line["unit_price_minor"] == again["supplier_orders"][0]["lines"][0]["unit_price_minor"]
    assert line["unit_price_minor"] >= 20000
    async with live.sessionmaker() as session:
        assert await session.scalar(select(Variant.stock).where(Variant.id == m.variant)) == 3
        assert await session.scalar(text("SELECT count(*) FROM orders")) == 2


async def test_a_retry_replays_and_a_reused_key_is_refused_on_the_one_statement_path(
    live: Live,
) -> None:
    """As test_checkout's replay test, on a real pool: the light unit of work, its reads
    together and its one-statement commit."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=10)
    headers = {"Idempotency-Key": "live-replay-1"}
    first = await place(live.client, m.slug, [(m.variant, 4)], headers=headers)
    assert first.status_code == 201, first.text
    again = await place(live.client, m.slug, [(m.variant, 4)], headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()

    reused = await place(live.client, m.slug, [(m.variant, 1)], headers=headers)
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    refused = await place(live.client, m.slug, [(m.variant, 99)])
    assert (refused.status_code, refused.json()["code"]) == (409, "out_of_stock")
    async with live.sessionmaker() as session:
        assert await session.scalar(select(Variant.stock).where(Variant.id == m.variant)) == 6
        assert await session.scalar(text("SELECT count(*) FROM orders")) == 1
        assert await session.scalar(text("SELECT count(*) FROM idempotency_keys")) == 1
