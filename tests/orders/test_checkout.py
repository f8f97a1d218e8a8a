"""Checkout through the API: frozen prices, supplier split, stock, expiry, refusals, attribution."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import assert_problem, assert_validation_error
from tests.catalogue.helpers import (
    Actor,
    add_to_shop,
    new_actor,
    open_shop,
    product_body,
    variant_body,
)
from tests.factories import PASSWORD, bearer
from tests.orders.helpers import (
    ADDRESS,
    Headers,
    Market,
    Supply,
    buyer_headers,
    checkout,
    events,
    key,
    market,
    new_supply,
    pay,
    place,
    run_queued,
    run_schedule,
)
from xiaopu.app import create_app
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.links import tokens
from xiaopu.shops import service as shops
from xiaopu.shops.repository import CheckoutShop

EXPIRY = timedelta(minutes=30)


# Small helpers ------------------------------------------------------------------------------


async def set_shipping(
    client: httpx.AsyncClient, supply: Supply, amount_minor: int, currency: str = "CNY"
) -> None:
    response = await client.put(
        f"/v1/suppliers/{supply.id}/shipping",
        json={"amount_minor": amount_minor, "currency": currency},
        headers=supply.owner.headers,
    )
    assert response.status_code == 200, response.text


async def product(client: httpx.AsyncClient, supply: Supply, index: int = 0) -> dict[str, Any]:
    response = await client.get(
        f"/v1/suppliers/{supply.id}/products/{supply.products[index]}", headers=supply.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stock_of(client: httpx.AsyncClient, supply: Supply, index: int = 0) -> int:
    stock: int = (await product(client, supply, index))["variants"][0]["stock"]
    return stock


async def read_order(
    client: httpx.AsyncClient, order: dict[str, Any], headers: Headers | None = None
) -> dict[str, Any]:
    response = await client.get(f"/v1/orders/{order['id']}", headers=buyer_headers(order, headers))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def shop_id(client: httpx.AsyncClient, keeper: Actor) -> uuid.UUID:
    response = await client.get("/v1/shops/mine", headers=keeper.headers)
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["id"])


async def new_link(client: httpx.AsyncClient, keeper: Actor) -> uuid.UUID:
    response = await client.post("/v1/shops/mine/links", json={}, headers=keeper.headers)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def carry(client: httpx.AsyncClient, m: Market, supply: Supply) -> None:
    """The market's shop carries the supply's products too (at 10%)."""
    for product_id in supply.products:
        added = await add_to_shop(client, m.keeper.headers, product_id, markup_bps=1000)
        assert added.status_code == 201, added.text


# Prices, totals and the split per supplier -------------------------------------------------


async def test_prices_are_frozen_on_the_lines_with_markup_and_shipping(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # 10,005 + 10% = 10,005 + 1,000.5 → 1,001 (half-up): 11,006 a unit.
    m = await market(client, session, price=10_005, stock=10, markup_bps=1000)
    supply = m.suppliers[0]
    await set_shipping(client, supply, 800)

    order = await checkout(client, m.slug, [(m.variant, 2)])
    assert order["currency"] == "CNY"
    assert order["items_minor"] == 22_012
    assert order["shipping_minor"] == 800
    assert order["total_minor"] == 22_812
    assert order["payment"]["amount_minor"] == 22_812
    assert order["payment"]["status"] == "pending"
    (part,) = order["supplier_orders"]
    assert part["supplier_id"] == supply.id
    assert (part["items_minor"], part["shipping_minor"], part["total_minor"]) == (
        22_012,
        800,
        22_812,
    )
    (line,) = part["lines"]
    assert line["variant_id"] == m.variant
    assert line["quantity"] == 2
    assert line["unit_price_minor"] == 11_006
    assert line["total_minor"] == 22_012

    # The supplier sees its own price on the line, not the shop's.
    seen = await client.get(
        f"/v1/suppliers/{supply.id}/orders/{part['id']}", headers=supply.headers
    )
    assert seen.status_code == 200, seen.text
    (supplier_line,) = seen.json()["lines"]
    assert supplier_line["unit_price_minor"] == 10_005
    assert supplier_line["base_minor"] == 20_010
    assert supplier_line["commission_bps"] == 1000

    # The supplier doubles its price: the order placed keeps the old one, a new order pays more.
    current = await product(client, supply)
    sku = current["variants"][0]["sku"]
    changed = await client.post(
        f"/v1/suppliers/{supply.id}/products/bulk-upsert",
        json={
            "products": [
                product_body(
                    current["ref"],
                    variants=[variant_body(sku, price_minor=20_010, stock=8)],
                    commission_bps=1000,
                    return_window_days=7,
                )
            ]
        },
        headers=supply.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["failed"] == []
    assert (await product(client, supply))["variants"][0]["price_minor"] == 20_010

    again = await read_order(client, order)
    assert again["items_minor"] == 22_012
    assert again["total_minor"] == 22_812
    assert again["supplier_orders"][0]["lines"][0]["unit_price_minor"] == 11_006

    later = await checkout(client, m.slug, [(m.variant, 1)])
    assert later["supplier_orders"][0]["lines"][0]["unit_price_minor"] == 20_010 + 2_001
    assert later["total_minor"] == 22_011 + 800


async def test_a_lowered_markup_ceiling_caps_the_shops_markup(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, price=10_000, markup_bps=1500)
    supply = m.suppliers[0]
    lowered = await client.patch(
        f"/v1/suppliers/{supply.id}/products/{supply.products[0]}",
        json={"markup_ceiling_bps": 500},
        headers=supply.headers,
    )
    assert lowered.status_code == 200, lowered.text

    order = await checkout(client, m.slug, [(m.variant, 1)])
    assert order["supplier_orders"][0]["lines"][0]["unit_price_minor"] == 10_500
    assert order["total_minor"] == 10_500


async def test_an_order_from_two_suppliers_is_split_with_its_own_shipping(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, suppliers=2, price=5_000, stock=10, markup_bps=2000)
    first, second = m.suppliers
    await set_shipping(client, first, 800)
    await set_shipping(client, second, 1_200)

    order = await checkout(client, m.slug, [(first.variants[0], 1), (second.variants[0], 3)])
    # 5,000 + 20% = 6,000 a unit.
    assert order["items_minor"] == 6_000 + 18_000
    assert order["shipping_minor"] == 800 + 1_200
    assert order["total_minor"] == 26_000
    parts = {p["supplier_id"]: p for p in order["supplier_orders"]}
    assert set(parts) == {first.id, second.id}
    assert len({p["id"] for p in parts.values()}) == 2

    one, two = parts[first.id], parts[second.id]
    assert [(ln["variant_id"], ln["quantity"]) for ln in one["lines"]] == [(first.variants[0], 1)]
    assert [(ln["variant_id"], ln["quantity"]) for ln in two["lines"]] == [(second.variants[0], 3)]
    assert (one["items_minor"], one["shipping_minor"], one["total_minor"]) == (6_000, 800, 6_800)
    assert (two["items_minor"], two["shipping_minor"], two["total_minor"]) == (
        18_000,
        1_200,
        19_200,
    )
    assert all(p["status"] == "pending_payment" for p in parts.values())

    # Each supplier sees only its own part.
    for supply, part in ((first, one), (second, two)):
        own = await client.get(
            f"/v1/suppliers/{supply.id}/orders/{part['id']}", headers=supply.headers
        )
        assert own.status_code == 200, own.text
        assert own.json()["total_minor"] == part["total_minor"]
    other = await client.get(f"/v1/suppliers/{first.id}/orders/{two['id']}", headers=first.headers)
    assert other.status_code == 404, other.text


# Stock, expiry and late payments -----------------------------------------------------------


async def test_stock_is_reserved_at_checkout_and_released_when_the_order_expires(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    assert settings.order_expiry_minutes == 30
    m = await market(client, session, stock=10)
    supply = m.suppliers[0]
    test_clock.freeze(test_clock.now())

    order = await checkout(client, m.slug, [(m.variant, 3)])
    assert await stock_of(client, supply) == 7

    # Not yet due: nothing happens.
    test_clock.advance(EXPIRY - timedelta(minutes=1))
    await run_schedule(session, settings, "orders.expire")
    assert (await read_order(client, order))["status"] == "pending_payment"
    assert await stock_of(client, supply) == 7
    assert await events(session, "order.expired") == []

    test_clock.advance(timedelta(minutes=1, seconds=1))
    await run_schedule(session, settings, "orders.expire")
    seen = await read_order(client, order)
    assert seen["status"] == "expired"
    assert [p["status"] for p in seen["supplier_orders"]] == ["expired"]
    assert await stock_of(client, supply) == 10
    (expired,) = await events(session, "order.expired")
    assert expired["order_id"] == order["id"]
    assert expired["status"] == "expired"

    # Running it again expires nothing more and gives back nothing twice.
    await run_schedule(session, settings, "orders.expire")
    assert await stock_of(client, supply) == 10
    assert len(await events(session, "order.expired")) == 1


async def test_a_payment_for_an_expired_order_is_refunded_in_full(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session, price=10_000, stock=10)
    supply = m.suppliers[0]
    await set_shipping(client, supply, 800)
    test_clock.freeze(test_clock.now())
    order = await checkout(client, m.slug, [(m.variant, 2)])
    assert order["total_minor"] == 22_800

    test_clock.advance(EXPIRY + timedelta(seconds=1))
    await run_schedule(session, settings, "orders.expire")

    paid = await pay(client, order)
    assert paid["result"]["outcome"] == "refunding_expired_order"
    refunds = (
        await session.execute(
            text(
                "SELECT reason, amount_minor, shipping_minor, currency, status, supplier_order_id"
                " FROM refunds WHERE order_id = :o"
            ),
            {"o": uuid.UUID(order["id"])},
        )
    ).all()
    assert [tuple(r) for r in refunds] == [("order_expired", 22_800, 0, "CNY", "pending", None)]

    seen = await read_order(client, order)
    assert seen["status"] == "expired"
    assert seen["refunded_minor"] == 22_800
    assert seen["payment"]["status"] == "paid"
    # The stock went back at expiry and is not taken again by the late payment.
    assert await stock_of(client, supply) == 10
    assert await events(session, "order.paid") == []

    assert await run_queued(session, settings) == 1
    (succeeded,) = await events(session, "refund.succeeded")
    assert succeeded["order_id"] == order["id"]
    assert succeeded["amount_minor"] == 22_800
    status = await session.scalar(
        text("SELECT status FROM refunds WHERE order_id = :o"), {"o": uuid.UUID(order["id"])}
    )
    assert status == "succeeded"


# Refusals ----------------------------------------------------------------------------------


async def test_checkout_needs_an_idempotency_key(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=10)
    body = {
        "shop_slug": m.slug,
        "items": [{"variant_id": m.variant, "quantity": 1}],
        "address": ADDRESS,
    }
    response = await client.post("/v1/orders", json=body)
    assert_problem(response, 400, "idempotency_key_missing")
    assert await stock_of(client, m.suppliers[0]) == 10


async def test_a_variant_the_shop_does_not_carry_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    elsewhere = await new_supply(client, m.op)  # approved and on sale, but not in this shop
    response = await place(client, m.slug, [(m.variant, 1), (elsewhere.variants[0], 1)])
    body = assert_problem(response, 422, "not_in_shop")
    assert body["line"] == 1

    unknown = await place(client, m.slug, [(str(uuid.uuid4()), 1)])
    assert assert_problem(unknown, 422, "not_in_shop")["line"] == 0


async def test_an_archived_product_is_unavailable(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=10, products=2)
    supply = m.suppliers[0]
    archived = await client.patch(
        f"/v1/suppliers/{supply.id}/products/{supply.products[1]}",
        json={"status": "archived"},
        headers=supply.headers,
    )
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "archived"

    response = await place(client, m.slug, [(supply.variants[0], 1), (supply.variants[1], 1)])
    body = assert_problem(response, 409, "product_unavailable")
    assert body["line"] == 1
    assert await stock_of(client, supply, 0) == 10


async def test_a_suspended_suppliers_products_are_unavailable(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    supply = m.suppliers[0]
    suspended = await client.post(
        f"/v1/operator/suppliers/{supply.id}/suspend",
        json={"reason": "Counterfeit goods reported"},
        headers=m.op.headers,
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"

    response = await place(client, m.slug, [(m.variant, 1)])
    assert assert_problem(response, 409, "product_unavailable")["line"] == 0


async def test_a_quantity_of_zero_is_invalid(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    response = await place(client, m.slug, [(m.variant, 0)])
    assert_validation_error(response, "body", "items", 0, "quantity")


async def test_more_than_99_units_on_a_line_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    assert settings.max_line_quantity == 99
    m = await market(client, session, stock=500)
    response = await place(client, m.slug, [(m.variant, 100)])
    body = assert_problem(response, 422, "quantity_too_large")
    assert body["line"] == 0
    assert body["max_quantity"] == 99

    # 99 is allowed.
    order = await checkout(client, m.slug, [(m.variant, 99)])
    assert order["supplier_orders"][0]["lines"][0]["quantity"] == 99
    assert await stock_of(client, m.suppliers[0]) == 401


async def test_more_lines_than_max_order_lines_is_refused(
    settings: Settings,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
) -> None:
    m = await market(client, session, products=3, stock=10)
    supply = m.suppliers[0]
    strict = settings.model_copy(update={"max_order_lines": 2})
    app = create_app(strict, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as small:
        response = await place(small, m.slug, [(v, 1) for v in supply.variants])
        body = assert_problem(response, 422, "too_many_lines")
        assert body["max_order_lines"] == 2

        order = await checkout(small, m.slug, [(v, 1) for v in supply.variants[:2]])
        assert len(order["supplier_orders"][0]["lines"]) == 2


async def test_a_variant_on_two_lines_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    response = await place(client, m.slug, [(m.variant, 1), (m.variant, 2)])
    assert assert_problem(response, 422, "duplicate_line")["line"] == 1


async def test_out_of_stock_is_refused_and_takes_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=5, products=2)
    supply = m.suppliers[0]
    response = await place(client, m.slug, [(supply.variants[0], 2), (supply.variants[1], 6)])
    body = assert_problem(response, 409, "out_of_stock")
    assert body["line"] == 1
    assert body["available"] == 5
    assert await stock_of(client, supply, 0) == 5
    assert await stock_of(client, supply, 1) == 5
    assert await events(session, "order.placed") == []

    # Exactly what is left may be ordered.
    order = await checkout(client, m.slug, [(supply.variants[1], 5)])
    assert order["status"] == "pending_payment"
    assert await stock_of(client, supply, 1) == 0
    gone = await place(client, m.slug, [(supply.variants[1], 1)])
    assert assert_problem(gone, 409, "out_of_stock")["available"] == 0


async def test_checkout_taking_stock_below_the_threshold_emits_one_stock_low_event(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=10)
    await session.execute(
        text("UPDATE variants SET low_stock_threshold = 5 WHERE id = :id"), {"id": m.variant}
    )
    await checkout(client, m.slug, [(m.variant, 5)])  # 5 left: at the threshold, not below
    assert await events(session, "product.stock_low") == []

    # A refused order took its units in the statement that locked them, and gives them back.
    refused = await place(client, m.slug, [(m.variant, 2), (str(uuid.uuid4()), 1)])
    assert_problem(refused, 422, "not_in_shop")
    assert await stock_of(client, m.suppliers[0]) == 5
    assert await events(session, "product.stock_low") == []

    await checkout(client, m.slug, [(m.variant, 2)])
    await checkout(client, m.slug, [(m.variant, 1)])  # still low: no second event
    (event,) = await events(session, "product.stock_low")
    assert event["variant_id"] == m.variant
    assert (event["stock"], event["threshold"]) == (3, 5)
    assert await stock_of(client, m.suppliers[0]) == 2


async def test_an_address_without_a_street_is_invalid(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    address = {k: v for k, v in ADDRESS.items() if k != "line1"}
    response = await place(client, m.slug, [(m.variant, 1)], address=address)
    assert_validation_error(response, "body", "address", "line1")


async def test_an_invalid_phone_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=10)
    response = await place(client, m.slug, [(m.variant, 1)], address={**ADDRESS, "phone": "12345"})
    assert_validation_error(response, "body", "address", "phone")
    assert await stock_of(client, m.suppliers[0]) == 10


async def test_items_in_two_currencies_are_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, currency="CNY")
    dollars = await new_supply(client, m.op, currency="USD", price=1_500)
    await carry(client, m, dollars)
    response = await place(client, m.slug, [(m.variant, 1), (dollars.variants[0], 1)])
    body = assert_problem(response, 422, "mixed_currencies")
    assert body["currencies"] == ["CNY", "USD"]

    # Each on its own is fine, in its own currency.
    order = await checkout(client, m.slug, [(dollars.variants[0], 1)])
    assert order["currency"] == "USD"
    assert order["total_minor"] == 1_650


async def test_shipping_charged_in_another_currency_is_unavailable(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, currency="CNY", stock=10)
    supply = m.suppliers[0]
    await set_shipping(client, supply, 500, "USD")
    response = await place(client, m.slug, [(m.variant, 1)])
    body = assert_problem(response, 409, "shipping_unavailable")
    assert body["supplier_id"] == supply.id
    assert await stock_of(client, supply) == 10

    # Free shipping is free in any currency.
    await set_shipping(client, supply, 0, "USD")
    order = await checkout(client, m.slug, [(m.variant, 1)])
    assert order["shipping_minor"] == 0
    assert order["total_minor"] == 11_000


# Attribution -------------------------------------------------------------------------------


async def test_a_valid_attribution_token_ties_the_order_to_the_link(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session)
    link_id = await new_link(client, m.keeper)
    click_id = uuid.uuid4()
    token = tokens.sign(
        settings.attribution_key,
        click_id,
        link_id,
        await shop_id(client, m.keeper),
        test_clock.now() - timedelta(days=6),
    )
    order = await checkout(client, m.slug, [(m.variant, 1)], attribution_token=token)
    assert order["attribution"] == "link"

    listed = await client.get("/v1/shops/mine/orders", headers=m.keeper.headers)
    assert listed.status_code == 200, listed.text
    (seen,) = listed.json()["items"]
    assert seen["id"] == order["id"]
    assert seen["attribution"] == "link"
    assert seen["link_id"] == str(link_id)
    (placed,) = await events(session, "order.placed")
    assert placed["attribution"] == "link"


async def test_a_token_for_another_shop_is_recorded_as_a_mismatch(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session)
    token = tokens.sign(
        settings.attribution_key, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), test_clock.now()
    )
    order = await checkout(client, m.slug, [(m.variant, 1)], attribution_token=token)
    assert order["attribution"] == "shop_mismatch"
    listed = (await client.get("/v1/shops/mine/orders", headers=m.keeper.headers)).json()
    assert listed["items"][0]["link_id"] is None


async def test_a_token_older_than_the_window_still_places_the_order(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    assert settings.attribution_window_days == 7
    m = await market(client, session, stock=10)
    token = tokens.sign(
        settings.attribution_key,
        uuid.uuid4(),
        await new_link(client, m.keeper),
        await shop_id(client, m.keeper),
        test_clock.now() - timedelta(days=8),
    )
    order = await checkout(client, m.slug, [(m.variant, 1)], attribution_token=token)
    assert order["attribution"] == "expired"
    assert order["status"] == "pending_payment"
    assert await stock_of(client, m.suppliers[0]) == 9
    listed = (await client.get("/v1/shops/mine/orders", headers=m.keeper.headers)).json()
    assert listed["items"][0]["link_id"] is None


async def test_a_forged_or_damaged_token_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    m = await market(client, session, stock=10)
    shop = await shop_id(client, m.keeper)
    link_id = await new_link(client, m.keeper)
    genuine = tokens.sign(settings.attribution_key, uuid.uuid4(), link_id, shop, test_clock.now())
    forged = tokens.sign(b"not our key", uuid.uuid4(), link_id, shop, test_clock.now())
    flipped = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
    for bad in (genuine[:-4], forged, flipped, "not-a-token!"):
        response = await place(client, m.slug, [(m.variant, 1)], attribution_token=bad)
        assert_problem(response, 422, "invalid_attribution_token")
    assert await stock_of(client, m.suppliers[0]) == 10
    assert await events(session, "order.placed") == []


# Who buys ----------------------------------------------------------------------------------


async def test_a_keeper_buying_in_their_own_shop_is_a_self_purchase(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    own = await checkout(client, m.slug, [(m.variant, 1)], headers=m.keeper.headers)
    assert own["self_purchase"] is True
    assert own["access_token"] is None

    buyer = await new_actor(client)
    bought = await checkout(client, m.slug, [(m.variant, 2)], headers=buyer.headers)
    assert bought["self_purchase"] is False
    assert bought["access_token"] is None
    guest = await checkout(client, m.slug, [(m.variant, 1)])
    assert guest["self_purchase"] is False
    assert guest["access_token"].startswith("xpo_")

    mine = await client.get("/v1/orders", headers=m.keeper.headers)
    assert mine.status_code == 200, mine.text
    assert [(o["id"], o["self_purchase"]) for o in mine.json()["items"]] == [(own["id"], True)]
    theirs = await client.get("/v1/orders", headers=buyer.headers)
    assert [o["id"] for o in theirs.json()["items"]] == [bought["id"]]

    shop_orders = (await client.get("/v1/shops/mine/orders", headers=m.keeper.headers)).json()
    flags = {o["id"]: o["self_purchase"] for o in shop_orders["items"]}
    assert flags == {own["id"]: True, bought["id"]: False, guest["id"]: False}


async def test_a_keeper_is_known_by_their_phone_signed_in_or_not(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    # A keeper who signed up with a phone number carries the market's product in their shop.
    number = f"139{secrets.randbelow(10**8):08d}"
    signed = await client.post("/v1/auth/signup", json={"phone": number, "password": PASSWORD})
    assert signed.status_code == 201, signed.text
    keeper = bearer(signed.json()["tokens"]["access_token"])
    shop = await open_shop(client, keeper)
    added = await add_to_shop(client, keeper, m.suppliers[0].products[0])
    assert added.status_code == 201, added.text

    # As a guest, the number written another way (+86, spaces) is still theirs.
    as_guest = {**ADDRESS, "phone": f"+86 {number[:3]} {number[3:7]} {number[7:]}"}
    own = await checkout(client, shop["slug"], [(m.variant, 1)], address=as_guest)
    assert own["access_token"].startswith("xpo_")
    assert own["self_purchase"] is True
    # Signed in as someone else, sending it to the keeper's number: the keeper is buying.
    someone = await new_actor(client)
    sent = await checkout(
        client, shop["slug"], [(m.variant, 1)], headers=someone.headers, address=as_guest
    )
    assert sent["self_purchase"] is True
    # Another guest's number is a sale like any other.
    other = await checkout(client, shop["slug"], [(m.variant, 1)])
    assert other["self_purchase"] is False

    shop_orders = (await client.get("/v1/shops/mine/orders", headers=keeper)).json()
    flags = {o["id"]: o["self_purchase"] for o in shop_orders["items"]}
    assert flags == {own["id"]: True, sent["id"]: True, other["id"]: False}


def test_an_owner_is_matched_by_account_phone_or_email() -> None:
    owner = uuid.uuid4()
    shop = CheckoutShop(uuid.uuid4(), owner, "+8613912345678", "keeper@example.com", {})
    assert shops.bought_by_owner(shop, owner, None)
    assert shops.bought_by_owner(shop, None, "+8613912345678")
    assert shops.bought_by_owner(shop, uuid.uuid4(), None, "keeper@example.com")
    assert not shops.bought_by_owner(shop, uuid.uuid4(), "+8613800138000", "buyer@example.com")
    assert not shops.bought_by_owner(shop, None, None)
    nobody = CheckoutShop(uuid.uuid4(), owner, None, None, {})
    assert not shops.bought_by_owner(nobody, None, None, None)


# Retries -----------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_replays_the_order_and_takes_stock_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=10)
    body = {
        "shop_slug": m.slug,
        "items": [{"variant_id": m.variant, "quantity": 4}],
        "address": ADDRESS,
    }
    headers = key()
    first = await client.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers

    again = await client.post("/v1/orders", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["total_minor"] == first.json()["total_minor"] == 44_000
    assert again.json()["access_token"] == first.json()["access_token"]
    assert await stock_of(client, m.suppliers[0]) == 6
    assert len(await events(session, "order.placed")) == 1

    # The same key for a different order is refused, and takes nothing either.
    changed = {**body, "items": [{"variant_id": m.variant, "quantity": 1}]}
    reused = await client.post("/v1/orders", json=changed, headers=headers)
    assert_problem(reused, 422, "idempotency_key_reused")
    assert await stock_of(client, m.suppliers[0]) == 6
    # So is one that checkout would refuse before reading anything: the stored key answers.
    duplicated = {**body, "items": [body["items"][0], body["items"][0]]}
    reused = await client.post("/v1/orders", json=duplicated, headers=headers)
    assert_problem(reused, 422, "idempotency_key_reused")
    # And a faithful retry of a refused order is refused again, not stored.
    refused_key = key()
    for _ in range(2):
        refused = await client.post("/v1/orders", json=duplicated, headers=refused_key)
        assert_problem(refused, 422, "duplicate_line")


# Signed-in buyers -------------------------------------------------------------------------


async def test_a_signed_in_buyer_reads_their_order_with_their_bearer(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    buyer = await new_actor(client)
    bought = await checkout(client, m.slug, [(m.variant, 2)], headers=buyer.headers)
    assert bought["access_token"] is None

    response = await client.get(f"/v1/orders/{bought['id']}", headers=buyer.headers)
    assert response.status_code == 200, response.text
    assert response.json()["total_minor"] == 22_000
    other = await client.get(f"/v1/orders/{bought['id']}", headers=m.keeper.headers)
    assert_problem(other, 404, "order_not_found")


async def test_a_value_postgres_refuses_on_checkouts_raw_path_is_422_and_nothing_is_kept(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # JSONB refuses \u0000; checkout writes the address on its raw connection, and the refusal
    # must still be the client's 422, with the stock untouched and no order kept.
    m = await market(client, session, stock=10)
    address = {**ADDRESS, "line1": "青年路\u0000 88 号"}
    response = await place(client, m.slug, [(m.variant, 1)], address=address)
    assert_problem(response, 422, "validation_error")
    assert await stock_of(client, m.suppliers[0]) == 10
    orders = await session.scalar(text("SELECT count(*) FROM orders"))
    assert orders == 0
