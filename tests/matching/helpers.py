"""A known small platform for the matching tests: suppliers, products and shops made through
the API, and a history of sales and clicks written straight into the tables (as checkout and
the click flusher would have left them), then the nightly job run at a frozen time."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import (
    Actor,
    active_supplier,
    add_to_shop,
    create_product,
    new_actor,
    open_shop,
    operator,
    product_body,
    variant_body,
)
from tests.factories import api_key, bearer
from tests.orders.helpers import run_schedule
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.kit.ids import new_id
from xiaopu.matching.jobs import COMPUTE_JOB

Headers = dict[str, str]

# 12:00 on 10 December in Shanghai: the window is the 30 local days 10 Nov – 9 Dec, from
# 2026-11-09T16:00Z to 2026-12-09T16:00Z; the last 7 from 2026-12-02T16:00Z.
NOW = datetime(2026, 12, 10, 4, 0, tzinfo=UTC)


def at(day: int, hour: int = 4, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


@dataclass
class Supplier:
    id: str
    owner: Actor
    key: Headers  # an API key with products:read and products:write
    products: dict[str, dict[str, Any]] = field(default_factory=dict)

    def product(self, name: str) -> str:
        return str(self.products[name]["id"])

    def variant(self, name: str) -> str:
        return str(self.products[name]["variants"][0]["id"])


@dataclass
class Shop:
    keeper: Actor
    id: str
    slug: str


async def new_supplier(client: httpx.AsyncClient, op: Actor) -> Supplier:
    owner = await new_actor(client)
    supplier_id = await active_supplier(client, owner.headers, op.headers)
    created = await api_key(client, supplier_id, owner.headers, ["products:read", "products:write"])
    return Supplier(supplier_id, owner, bearer(created["key"]))


async def add_product(
    client: httpx.AsyncClient,
    supplier: Supplier,
    name: str,
    *,
    category: str,
    price: int,
    commission_bps: int,
    stock: int = 10,
    status: str = "active",
) -> str:
    ref = f"{name}-{uuid.uuid4().hex[:8]}"
    body = product_body(
        ref,
        variants=[variant_body(f"{ref}-A", price_minor=price, stock=stock)],
        title=f"Product {name}",
        category_id=category,
        commission_bps=commission_bps,
        status=status,
    )
    supplier.products[name] = await create_product(client, supplier.id, supplier.key, body)
    return supplier.product(name)


async def new_shop(client: httpx.AsyncClient, carries: list[str] | None = None) -> Shop:
    keeper = await new_actor(client)
    shop = await open_shop(client, keeper.headers)
    for product_id in carries or []:
        added = await add_to_shop(client, keeper.headers, product_id)
        assert added.status_code == 201, added.text
    return Shop(keeper, str(shop["id"]), str(shop["slug"]))


async def sold(
    session: AsyncSession,
    shop: Shop,
    supplier: Supplier,
    product: str,
    *,
    quantity: int,
    paid_at: datetime,
    returned: int = 0,
    status: str = "delivered",
    price: int = 1000,
) -> None:
    """One paid order of `quantity` units of the product in the shop."""
    order_id, part_id = new_id(), new_id()
    base = price * quantity
    await session.execute(
        text(
            "INSERT INTO orders (id, shop_id, buyer_phone, address, status, currency, "
            "items_minor, shipping_minor, total_minor, refunded_minor, attribution, "
            "self_purchase, expires_at, paid_at, access_token_hash, created_at, updated_at) "
            "VALUES (:id, :shop, '+8613800138000', CAST(:address AS jsonb), 'paid', 'CNY', "
            ":base, 0, :base, 0, 'none', false, :at, :at, :token, :at, :at)"
        ),
        {
            "id": order_id,
            "shop": uuid.UUID(shop.id),
            "address": json.dumps({"recipient": "王小明", "city": "昆明市"}),
            "base": base,
            "at": paid_at,
            "token": hashlib.sha256(order_id.bytes).digest(),
        },
    )
    await session.execute(
        text(
            "INSERT INTO supplier_orders (id, order_id, supplier_id, shop_id, status, currency, "
            "items_minor, shipping_minor, total_minor, refunded_minor, shipping_refunded, "
            "paid_at, created_at, updated_at) VALUES (:id, :order, :supplier, :shop, :status, "
            "'CNY', :base, 0, :base, 0, false, :at, :at, :at)"
        ),
        {
            "id": part_id,
            "order": order_id,
            "supplier": uuid.UUID(supplier.id),
            "shop": uuid.UUID(shop.id),
            "status": status,
            "base": base,
            "at": paid_at,
        },
    )
    await session.execute(
        text(
            "INSERT INTO order_lines (id, order_id, supplier_order_id, product_id, variant_id, "
            "sku, title, options, quantity, currency, unit_price_minor, unit_markup_minor, "
            "base_minor, markup_minor, commission_bps, platform_fee_bps, return_window_days, "
            "returned_quantity, created_at) VALUES (:id, :order, :part, :product, :variant, "
            "'SKU', 'title', '{}', :quantity, 'CNY', :price, 0, :base, 0, 1000, 500, 7, "
            ":returned, :at)"
        ),
        {
            "id": new_id(),
            "order": order_id,
            "part": part_id,
            "product": uuid.UUID(supplier.product(product)),
            "variant": uuid.UUID(supplier.variant(product)),
            "quantity": quantity,
            "price": price,
            "base": base,
            "returned": returned,
            "at": paid_at,
        },
    )


async def clicked(
    session: AsyncSession,
    shop: Shop,
    product_id: str | None,
    *,
    clicks: int,
    visitors: int,
    on: datetime,
    repeats: int = 0,
) -> None:
    """`clicks` counted opens of the shop's link to the product by `visitors` visitors, and
    `repeats` repeated ones (never counted)."""
    link_id = new_id()
    for n in range(clicks + repeats):
        await session.execute(
            text(
                "INSERT INTO clicks (id, created_at, link_id, shop_id, product_id, visitor_id, "
                "agent_class, is_repeat) VALUES (:id, :at, :link, :shop, :product, :visitor, "
                "'mobile', :repeat)"
            ),
            {
                "id": new_id(),
                "at": on,
                "link": link_id,
                "shop": uuid.UUID(shop.id),
                "product": None if product_id is None else uuid.UUID(product_id),
                "visitor": f"v{link_id.hex[:16]}-{n % visitors}",
                "repeat": n >= clicks,
            },
        )


async def compute(session: AsyncSession, settings: Settings, clock: Clock) -> None:
    """Run the nightly job at NOW, as the worker would, and commit it."""
    await session.commit()
    clock.freeze(NOW)
    await run_schedule(session, settings, COMPUTE_JOB)


async def operator_actor(client: httpx.AsyncClient, session: AsyncSession) -> Actor:
    return await operator(client, session)


@dataclass
class World:
    op: Actor
    s: Supplier  # the active supplier
    suspended: Supplier
    other: Supplier  # another active supplier, with a product of its own
    a: Shop  # tea, mid-price: the shop the recommendations are for
    b: Shop  # tea too: A's peer
    c: Shop  # snacks


async def world(client: httpx.AsyncClient, session: AsyncSession) -> World:
    """The platform the exact figures below are worked out for (all times within the window
    unless said otherwise; every order below is paid, the cancelled one aside)."""
    op = await operator_actor(client, session)
    s = await new_supplier(client, op)
    for name, category, price, commission in [
        ("carried", "food.tea", 5_000, 1_000),
        ("snack_carried", "food.snacks", 2_000, 1_000),
        ("t1", "food.tea", 6_000, 1_500),
        ("t2", "food.tea", 8_000, 1_000),
        ("t3", "food.tea", 50_000, 1_000),
        ("k1", "food.snacks", 2_000, 2_000),
    ]:
        await add_product(
            client, s, name, category=category, price=price, commission_bps=commission
        )
    await add_product(
        client, s, "sold_out", category="food.tea", price=6_000, commission_bps=3_000, stock=0
    )
    await add_product(
        client, s, "draft", category="food.tea", price=6_000, commission_bps=3_000, status="draft"
    )
    suspended = await new_supplier(client, op)
    await add_product(
        client, suspended, "x", category="food.tea", price=6_000, commission_bps=3_000
    )
    other = await new_supplier(client, op)
    await add_product(client, other, "o1", category="food.fruit", price=6_000, commission_bps=1_000)

    a = await new_shop(client, [s.product("carried")])
    b = await new_shop(client, [s.product("t1")])
    c = await new_shop(client, [s.product("snack_carried"), s.product("k1")])

    # A: 4 units of its tea in two orders, 30 clicks from 15 visitors (and 5 repeats), and an
    # order from before the window that must not count.
    await sold(session, a, s, "carried", quantity=2, paid_at=at(1))
    await sold(session, a, s, "carried", quantity=2, paid_at=at(5))
    await clicked(session, a, s.product("carried"), clicks=30, visitors=15, on=at(5), repeats=5)
    await sold(session, a, s, "t2", quantity=1, paid_at=at(1, month=11))
    # B: t1 twice, one of A's tea, and 5 units of the suspended supplier's tea (sold before it
    # was suspended); 20 clicks on t1 from 20 visitors, 10 on its shop link.
    await sold(session, b, s, "t1", quantity=1, paid_at=at(3))
    await sold(session, b, s, "t1", quantity=1, paid_at=at(8))
    await sold(session, b, s, "carried", quantity=1, paid_at=at(8))
    await sold(session, b, suspended, "x", quantity=5, paid_at=at(4))
    await clicked(session, b, s.product("t1"), clicks=20, visitors=20, on=at(6))
    await clicked(session, b, None, clicks=10, visitors=10, on=at(6))
    # C: k1 three times (one unit came back), once cancelled, one of its other snack; 40
    # clicks on k1 from 40 visitors.
    for day, returned in ((2, 1), (4, 0), (9, 0)):
        await sold(session, c, s, "k1", quantity=1, paid_at=at(day), returned=returned)
    await sold(session, c, s, "k1", quantity=3, paid_at=at(4), status="cancelled")
    await sold(session, c, s, "snack_carried", quantity=1, paid_at=at(7))
    await clicked(session, c, s.product("k1"), clicks=40, visitors=40, on=at(7))

    suspend = await client.post(
        f"/v1/operator/suppliers/{suspended.id}/suspend",
        json={"reason": "tests"},
        headers=op.headers,
    )
    assert suspend.status_code == 200, suspend.text
    return World(op, s, suspended, other, a, b, c)
