"""Builders for order tests: a market (supplier, products, shop), checkout, payment, jobs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from xiaopu.config import Settings
from xiaopu.jobs import JobContext, entrypoints, schedules
from xiaopu.orders.payments import REFUND_JOB

Headers = dict[str, str]
SCOPES = ["orders:read", "orders:write", "products:read", "products:write"]

ADDRESS = {
    "recipient": "王小明",
    "phone": "13800138000",
    "province": "云南省",
    "city": "昆明市",
    "district": "五华区",
    "line1": "青年路 88 号",
}


def key() -> Headers:
    return {"Idempotency-Key": str(uuid.uuid4())}


@dataclass
class Supply:
    """An approved supplier with products, as its owner sees it."""

    id: str
    owner: Actor
    # The supplier's systems call with an API key (orders, products); it outlives moved clocks.
    headers: Headers = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)


@dataclass
class Market:
    keeper: Actor
    slug: str
    op: Actor
    suppliers: list[Supply]

    @property
    def variant(self) -> str:
        return self.suppliers[0].variants[0]


async def new_supply(
    client: httpx.AsyncClient,
    op: Actor,
    *,
    price: int = 10_000,
    stock: int = 10,
    currency: str = "CNY",
    commission_bps: int = 1000,
    return_window_days: int = 7,
    products: int = 1,
) -> Supply:
    owner = await new_actor(client)
    supplier_id = await active_supplier(client, owner.headers, op.headers)
    created_key = await api_key(client, supplier_id, owner.headers, SCOPES)
    supply = Supply(supplier_id, owner, bearer(created_key["key"]))
    for _ in range(products):
        ref = uuid.uuid4().hex[:10]
        body = product_body(
            ref,
            variants=[variant_body(f"{ref}-A", price_minor=price, stock=stock, currency=currency)],
            commission_bps=commission_bps,
            return_window_days=return_window_days,
        )
        created = await create_product(client, supplier_id, owner.headers, body)
        supply.products.append(created["id"])
        supply.variants.append(created["variants"][0]["id"])
    return supply


async def market(
    client: httpx.AsyncClient,
    session: AsyncSession,
    *,
    suppliers: int = 1,
    markup_bps: int = 1000,
    **supply: Any,
) -> Market:
    """Suppliers' products, all carried by a new shop at `markup_bps`."""
    op = await operator(client, session)
    keeper = await new_actor(client)
    shop = await open_shop(client, keeper.headers)
    supplies = [await new_supply(client, op, **supply) for _ in range(suppliers)]
    for s in supplies:
        for product_id in s.products:
            added = await add_to_shop(client, keeper.headers, product_id, markup_bps=markup_bps)
            assert added.status_code == 201, added.text
    return Market(keeper, shop["slug"], op, supplies)


async def place(
    client: httpx.AsyncClient,
    slug: str,
    items: list[tuple[str, int]],
    *,
    headers: Headers | None = None,
    address: dict[str, Any] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {
        "shop_slug": slug,
        "items": [{"variant_id": v, "quantity": q} for v, q in items],
        "address": address or ADDRESS,
        **extra,
    }
    # A fresh Idempotency-Key unless the caller brings its own.
    return await client.post("/v1/orders", json=body, headers={**key(), **(headers or {})})


async def checkout(
    client: httpx.AsyncClient, slug: str, items: list[tuple[str, int]], **kw: Any
) -> dict[str, Any]:
    response = await place(client, slug, items, **kw)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def ask_to_pay(
    client: httpx.AsyncClient, order: dict[str, Any], headers: Headers | None = None
) -> httpx.Response:
    """The buyer asks to pay: the provider opens the order's payment."""
    return await client.post(
        f"/v1/orders/{order['id']}/payment", headers=buyer_headers(order, headers)
    )


async def pay(
    client: httpx.AsyncClient, order: dict[str, Any], outcome: str = "paid"
) -> dict[str, Any]:
    """The buyer pays at the sandbox (which, unlike a real provider, does not need the payment
    opened first: see ask_to_pay for that step)."""
    ref = order["payment"]["provider_ref"]
    response = await client.post(f"/v1/sandbox/payments/{ref}/pay", json={"outcome": outcome})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def buyer_headers(order: dict[str, Any], headers: Headers | None = None) -> Headers:
    """How the order's buyer reads it: the guest token, or their bearer."""
    if order.get("access_token"):
        return {"X-Order-Token": order["access_token"]}
    assert headers is not None
    return headers


async def supplier_act(
    client: httpx.AsyncClient,
    supply: Supply,
    part_id: str,
    action: str,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/v1/suppliers/{supply.id}/orders/{part_id}/{action}",
        json=body,
        headers={**supply.headers, **key()},
    )


async def run_queued(
    session: AsyncSession, settings: Settings, entrypoint: str = REFUND_JOB
) -> int:
    """Run (and remove) the jobs of one kind queued in this test's transaction, as the worker
    runs them: a job that commits its own steps gets sessions of the test's connection, whose
    commits are savepoints of the test's transaction."""
    entry = entrypoints()[entrypoint]
    rows = (
        await session.execute(
            text("DELETE FROM pgqueuer WHERE entrypoint = :e RETURNING payload"), {"e": entrypoint}
        )
    ).all()
    sessions = async_sessionmaker(
        bind=session.bind,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )
    async with httpx.AsyncClient() as http:
        ctx = JobContext(settings=settings, http=http, sessionmaker=sessions)
        for (payload,) in rows:
            if entry.own_transactions:
                await entry.handler(session, ctx, bytes(payload))
            else:
                async with sessions() as job_session:
                    await entry.handler(job_session, ctx, bytes(payload))
                    await job_session.commit()
    await session.commit()
    # The jobs wrote through sessions of their own: what this one holds may be stale.
    session.expire_all()
    return len(rows)


async def run_schedule(session: AsyncSession, settings: Settings, name: str) -> None:
    (handler,) = [s.handler for s in schedules() if s.name == name]
    async with httpx.AsyncClient() as http:
        await handler(session, JobContext(settings=settings, http=http), b"")
    await session.commit()


async def events(session: AsyncSession, event_type: str) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            text("SELECT data FROM events WHERE type = :t ORDER BY id"), {"t": event_type}
        )
    ).all()
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]
