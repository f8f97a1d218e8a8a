"""Every operator action writes exactly one audit record naming the operator, the action and
the object, in the action's own transaction.

The table below maps each non-GET route that admits operators (its dependencies include
CurrentOperator) to a request that exercises it. A new operator route without an entry fails
`test_every_operator_route_is_in_the_table`: add its case, and have its service call
`audit.service.record`.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.catalogue.helpers import Actor, active_supplier, new_actor, operator
from tests.factories import supplier
from tests.orders.helpers import buyer_headers, checkout, key, market, pay, run_queued
from tests.orders.helpers import supplier_act as supplier_acts
from tests.settlements.helpers import delivered_order
from tests.settlements.test_payouts import MONDAY, CountingProvider, _settled
from xiaopu.app import create_app
from xiaopu.audit import service as audit
from xiaopu.auth.auth import CurrentOperator
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.settlements import payouts
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType


@dataclass
class World:
    client: httpx.AsyncClient
    session: AsyncSession
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    op: Actor


@dataclass(frozen=True)
class Call:
    """The request an operator makes, and the record it must leave."""

    path: str
    action: str
    object_type: str
    object_id: str | None
    body: dict[str, Any] | None = None


Arrange = Callable[[World], Awaitable[Call]]
# A Call's object_id for a route that creates its object: the id in the answer.
CREATED = "<the id answered>"


async def _approve(w: World) -> Call:
    supplier_id, _ = await supplier(w.client)
    return Call(
        f"/v1/operator/suppliers/{supplier_id}/approve",
        "supplier.approve",
        "supplier",
        supplier_id,
    )


async def _reject(w: World) -> Call:
    supplier_id, _ = await supplier(w.client)
    return Call(
        f"/v1/operator/suppliers/{supplier_id}/reject",
        "supplier.reject",
        "supplier",
        supplier_id,
        {"reason": "no business licence"},
    )


async def _suspend(w: World) -> Call:
    owner = await new_actor(w.client)
    supplier_id = await active_supplier(w.client, owner.headers, w.op.headers)
    return Call(
        f"/v1/operator/suppliers/{supplier_id}/suspend",
        "supplier.suspend",
        "supplier",
        supplier_id,
        {"reason": "counterfeit goods"},
    )


async def _asked_return(w: World) -> str:
    m = await market(w.client, w.session)
    order = await delivered_order(w.client, m, 1)
    (part,) = order["supplier_orders"]
    asked = await w.client.post(
        f"/v1/orders/{order['id']}/returns",
        json={"line_id": part["lines"][0]["id"], "quantity": 1, "reason": "broken"},
        headers=buyer_headers(order),
    )
    assert asked.status_code == 201, asked.text
    return str(asked.json()["id"])


async def _decide_return(w: World) -> Call:
    return_id = await _asked_return(w)
    return Call(
        f"/v1/operator/returns/{return_id}/decide",
        "return.decide",
        "return",
        return_id,
        {"decision": "reject", "note": "the photos show no damage"},
    )


async def _held(w: World) -> Call:
    m = await market(w.client, w.session)
    order = await checkout(w.client, m.slug, [(m.variant, 1)], headers=m.keeper.headers)
    assert order["self_purchase"] is True
    await pay(w.client, order)
    (part,) = order["supplier_orders"]
    return Call(
        f"/v1/operator/commissions/held/{part['id']}",
        "commission.held_forfeit",
        "supplier_order",
        part["id"],
        {"decision": "forfeit"},
    )


async def _failed_refund(w: World) -> Call:
    # The sandbox refuses refunds of amounts ending in 13 minor units: 1,013 = 921 + 10% markup.
    m = await market(w.client, w.session, price=921, stock=5)
    order = await checkout(w.client, m.slug, [(m.variant, 1)])
    await pay(w.client, order)
    (part,) = order["supplier_orders"]
    cancelled = await supplier_acts(
        w.client, m.suppliers[0], part["id"], "cancel", {"reason": "no stock"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert await run_queued(w.session, w.settings) == 1
    failed = await w.client.get("/v1/operator/refunds?status=failed", headers=w.op.headers)
    (refund,) = failed.json()["items"]
    return Call(
        f"/v1/operator/refunds/{refund['id']}/retry", "refund.retry", "refund", refund["id"]
    )


async def _failed_supplier_payout(w: World) -> Call:
    _, _, payout_id = await _settled(w.client, w.session, w.settings, 6_000)
    provider = CountingProvider(w.settings, refuse={payouts.payout_key(payout_id, 1)})
    run = await payouts.pay_supplier_payouts(w.sessionmaker, w.settings, provider=provider)
    assert run.failed == 1
    return Call(
        f"/v1/operator/settlement-payouts/{payout_id}/retry",
        "settlement_payout.retry",
        "supplier_payout",
        str(payout_id),
    )


async def _payout_run(w: World) -> Call:
    return Call("/v1/operator/payouts/run", "payout.run", "payout_run", None)


APPS = "/v1/operator/applications"


async def _application(w: World) -> str:
    made = await w.client.post(APPS, json={"name": "app backend"}, headers=w.op.headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _app_endpoint(w: World) -> tuple[str, str]:
    app_id = await _application(w)
    made = await w.client.post(
        f"{APPS}/{app_id}/webhook-endpoints",
        json={"url": "https://app.example.com/hooks", "event_types": ["order.paid"]},
        headers=w.op.headers,
    )
    assert made.status_code == 201, made.text
    return app_id, str(made.json()["id"])


async def _create_application(w: World) -> Call:
    return Call(APPS, "application.create", "application", CREATED, {"name": "mobile app"})


async def _disable_application(w: World) -> Call:
    app_id = await _application(w)
    return Call(
        f"{APPS}/{app_id}/disable",
        "application.disable",
        "application",
        app_id,
        {"reason": "rotating vendors"},
    )


async def _enable_application(w: World) -> Call:
    app_id = await _application(w)
    off = await w.client.post(
        f"{APPS}/{app_id}/disable", json={"reason": "paused"}, headers=w.op.headers
    )
    assert off.status_code == 200, off.text
    return Call(f"{APPS}/{app_id}/enable", "application.enable", "application", app_id)


async def _create_app_endpoint(w: World) -> Call:
    app_id = await _application(w)
    return Call(
        f"{APPS}/{app_id}/webhook-endpoints",
        "webhook_endpoint.create",
        "webhook_endpoint",
        CREATED,
        {"url": "https://app.example.com/hooks", "event_types": ["commission.accrued"]},
    )


async def _update_app_endpoint(w: World) -> Call:
    app_id, endpoint_id = await _app_endpoint(w)
    return Call(
        f"{APPS}/{app_id}/webhook-endpoints/{endpoint_id}",
        "webhook_endpoint.update",
        "webhook_endpoint",
        endpoint_id,
        {"event_types": ["order.paid", "shop.promoted"]},
    )


async def _delete_app_endpoint(w: World) -> Call:
    app_id, endpoint_id = await _app_endpoint(w)
    return Call(
        f"{APPS}/{app_id}/webhook-endpoints/{endpoint_id}",
        "webhook_endpoint.delete",
        "webhook_endpoint",
        endpoint_id,
    )


async def _rotate_app_secret(w: World) -> Call:
    app_id, endpoint_id = await _app_endpoint(w)
    return Call(
        f"{APPS}/{app_id}/webhook-endpoints/{endpoint_id}/rotate-secret",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint",
        endpoint_id,
        {},
    )


async def _replay_to_app(w: World) -> Call:
    app_id, _ = await _app_endpoint(w)
    event = await webhooks.emit(w.session, EventType.order_paid, uuid.uuid4(), {"n": 1})
    await w.session.flush()
    return Call(
        f"{APPS}/{app_id}/events/{event.id}/replay", "event.replay", "event", str(event.id), {}
    )


ORGS = "/v1/operator/organisations"
CONTRACT = {"override_bps": 2000, "currency": "CNY", "monthly_cap_minor": 1, "min_active_shops": 0}


async def _organisation(w: World) -> str:
    body = {
        "name": "城市合伙人",
        "kind": "city_partner",
        "contract": CONTRACT,
        "admin": {"account_id": w.op.account_id},
    }
    made = await w.client.post(ORGS, json=body, headers=w.op.headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _create_organisation(w: World) -> Call:
    body = {
        "name": "某学院",
        "kind": "college",
        "contract": CONTRACT,
        "admin": {"email": w.op.email},
    }
    return Call(ORGS, "organisation.create", "organisation", CREATED, body)


async def _update_contract(w: World) -> Call:
    org_id = await _organisation(w)
    return Call(
        f"{ORGS}/{org_id}/contract",
        "organisation.update_contract",
        "organisation",
        org_id,
        {**CONTRACT, "override_bps": 1000, "reason": "renewed"},
    )


async def _suspend_organisation(w: World) -> Call:
    org_id = await _organisation(w)
    return Call(
        f"{ORGS}/{org_id}/suspend",
        "organisation.suspend",
        "organisation",
        org_id,
        {"reason": "review"},
    )


async def _resume_organisation(w: World) -> Call:
    org_id = await _organisation(w)
    off = await w.client.post(
        f"{ORGS}/{org_id}/suspend", json={"reason": "review"}, headers=w.op.headers
    )
    assert off.status_code == 200, off.text
    return Call(
        f"{ORGS}/{org_id}/resume", "organisation.resume", "organisation", org_id, {"reason": "ok"}
    )


async def _move_shop(w: World) -> Call:
    org_id = await _organisation(w)
    keeper = await new_actor(w.client)
    shop = await w.client.post("/v1/shops", headers=keeper.headers)
    assert shop.status_code == 201, shop.text
    shop_id = str(shop.json()["id"])
    return Call(
        f"/v1/operator/shops/{shop_id}/organisation",
        "shop.move_cohort",
        "shop",
        shop_id,
        {"organisation_id": org_id, "reason": "recruited at a fair"},
    )


CASES: dict[tuple[str, str], Arrange] = {
    ("POST", "/v1/operator/suppliers/{supplier_id}/approve"): _approve,
    ("POST", "/v1/operator/suppliers/{supplier_id}/reject"): _reject,
    ("POST", "/v1/operator/suppliers/{supplier_id}/suspend"): _suspend,
    ("POST", "/v1/operator/returns/{return_id}/decide"): _decide_return,
    ("POST", "/v1/operator/commissions/held/{supplier_order_id}"): _held,
    ("POST", "/v1/operator/refunds/{refund_id}/retry"): _failed_refund,
    ("POST", "/v1/operator/settlement-payouts/{payout_id}/retry"): _failed_supplier_payout,
    ("POST", "/v1/operator/payouts/run"): _payout_run,
    ("POST", APPS): _create_application,
    ("POST", APPS + "/{application_id}/disable"): _disable_application,
    ("POST", APPS + "/{application_id}/enable"): _enable_application,
    ("POST", APPS + "/{application_id}/webhook-endpoints"): _create_app_endpoint,
    ("PATCH", APPS + "/{application_id}/webhook-endpoints/{endpoint_id}"): _update_app_endpoint,
    ("DELETE", APPS + "/{application_id}/webhook-endpoints/{endpoint_id}"): _delete_app_endpoint,
    (
        "POST",
        APPS + "/{application_id}/webhook-endpoints/{endpoint_id}/rotate-secret",
    ): _rotate_app_secret,
    ("POST", APPS + "/{application_id}/events/{event_id}/replay"): _replay_to_app,
    ("POST", ORGS): _create_organisation,
    ("PUT", ORGS + "/{organisation_id}/contract"): _update_contract,
    ("POST", ORGS + "/{organisation_id}/suspend"): _suspend_organisation,
    ("POST", ORGS + "/{organisation_id}/resume"): _resume_organisation,
    ("POST", "/v1/operator/shops/{shop_id}/organisation"): _move_shop,
}

_OPERATOR_DEPENDENCY = typing.get_args(CurrentOperator)[1].dependency


def _admits_operators(dependant: Dependant) -> bool:
    return any(
        d.call is _OPERATOR_DEPENDENCY or _admits_operators(d) for d in dependant.dependencies
    )


def operator_actions(settings: Settings) -> set[tuple[str, str]]:
    """Every (method, path) that changes something and admits operators."""
    found = set()
    # Included routers are kept nested; their routes come with their full paths from here.
    for context in iter_route_contexts(create_app(settings).routes):
        route = context.original_route
        if isinstance(route, APIRoute) and _admits_operators(route.dependant):
            for method in (context.methods or set()) - {"GET", "HEAD", "OPTIONS"}:
                found.add((method, str(context.path)))
    return found


def test_every_operator_route_is_in_the_table(settings: Settings) -> None:
    actions = operator_actions(settings)
    assert actions, "no operator route found: is CurrentOperator still the dependency?"
    missing = actions - set(CASES)
    assert not missing, f"operator routes without an audit case: {sorted(missing)}"
    assert set(CASES) <= actions, f"cases for routes that are gone: {set(CASES) - actions}"


@pytest.fixture
async def holding(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app holding self-purchases for an operator (the held-earnings route needs some)."""
    app = create_app(
        settings.model_copy(update={"self_purchase_policy": "hold"}), sessionmaker=sessionmaker
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.11", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
async def test_an_operator_action_writes_one_audit_record(
    route: tuple[str, str],
    holding: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze(MONDAY)
    op = await operator(holding, session)
    world = World(holding, session, sessionmaker, settings, op)
    call = await CASES[route](world)
    last_seq = await session.scalar(text("SELECT coalesce(max(seq), 0) FROM audit_records"))
    method, _ = route
    request_id = f"audit-{uuid.uuid4().hex[:8]}"
    response = await holding.request(
        method,
        call.path,
        json=call.body,
        headers={**op.headers, **key(), "X-Request-ID": request_id},
    )
    assert response.is_success, response.text

    records = (
        (
            await session.execute(
                text("SELECT * FROM audit_records WHERE seq > :s ORDER BY seq"), {"s": last_seq}
            )
        )
        .mappings()
        .all()
    )
    assert len(records) == 1, records
    (record,) = records
    assert str(record["operator_id"]) == op.account_id
    assert record["actor"] == op.email
    object_id = response.json()["id"] if call.object_id == CREATED else call.object_id
    assert (record["action"], record["object_type"], record["object_id"]) == (
        call.action,
        call.object_type,
        object_id,
    )
    assert record["request_id"] == request_id
    assert record["after"] is not None
    assert (await audit.verify_chain(session)).ok
