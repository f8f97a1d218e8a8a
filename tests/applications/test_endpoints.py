"""Operators manage platform applications and their endpoints: answers, audit records, errors."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import Actor, new_actor, operator
from tests.orders.helpers import key
from tests.webhooks.helpers import assert_problem
from xiaopu.webhooks.service import MAX_ENDPOINTS

APPS = "/v1/operator/applications"
HOOK = "https://app.example.com/hooks"


async def audit_records(session: AsyncSession, object_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM audit_records WHERE object_id = :id ORDER BY seq"), {"id": object_id}
    )
    return [dict(r) for r in rows.mappings()]


async def new_application(client: httpx.AsyncClient, op: Actor, name: str = "app") -> str:
    made = await client.post(APPS, json={"name": name}, headers=op.headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_an_operator_creates_lists_disables_and_enables_an_application(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    made = await client.post(APPS, json={"name": "  mobile app backend "}, headers=op.headers)
    assert made.status_code == 201, made.text
    app = made.json()
    assert (app["name"], app["status"], app["disabled_at"]) == (
        "mobile app backend",
        "active",
        None,
    )
    assert (await client.get(f"{APPS}/{app['id']}", headers=op.headers)).json() == app
    listed = await client.get(APPS, headers=op.headers)
    assert app["id"] in [a["id"] for a in listed.json()["items"]]

    off = await client.post(
        f"{APPS}/{app['id']}/disable", json={"reason": "new vendor"}, headers=op.headers
    )
    assert off.status_code == 200, off.text
    assert (off.json()["status"], off.json()["disabled_reason"]) == ("disabled", "new vendor")
    assert off.json()["disabled_at"] is not None
    on = await client.post(f"{APPS}/{app['id']}/enable", headers=op.headers)
    assert (on.json()["status"], on.json()["disabled_reason"]) == ("active", None)

    records = await audit_records(session, app["id"])
    assert [(r["action"], str(r["operator_id"])) for r in records] == [
        ("application.create", op.account_id),
        ("application.disable", op.account_id),
        ("application.enable", op.account_id),
    ]
    assert records[1]["reason"] == "new vendor"
    assert (records[1]["before"]["status"], records[1]["after"]["status"]) == (
        "active",
        "disabled",
    )


async def test_endpoint_actions_are_audited_and_the_log_never_holds_a_secret(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    app_id = await new_application(client, op)
    made = await client.post(
        f"{APPS}/{app_id}/webhook-endpoints",
        json={"url": HOOK, "event_types": ["order.paid", "commission.available", "order.paid"]},
        headers=op.headers,
    )
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["event_types"] == ["commission.available", "order.paid"]
    path = f"{APPS}/{app_id}/webhook-endpoints/{endpoint['id']}"
    got = await client.get(path, headers=op.headers)
    assert "secret" not in got.json()
    listed = await client.get(f"{APPS}/{app_id}/webhook-endpoints", headers=op.headers)
    assert [e["id"] for e in listed.json()["items"]] == [endpoint["id"]]
    changed = await client.patch(
        path, json={"event_types": ["shop.promoted"], "enabled": False}, headers=op.headers
    )
    assert (changed.json()["event_types"], changed.json()["status"]) == (
        ["shop.promoted"],
        "disabled",
    )
    rotated = await client.post(f"{path}/rotate-secret", json={}, headers=op.headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]
    for sub in ("deliveries", "attempts"):
        page = await client.get(f"{path}/{sub}", headers=op.headers)
        assert page.json() == {"items": [], "next_cursor": None}
    deleted = await client.delete(path, headers=op.headers)
    assert deleted.status_code == 204
    assert_problem(await client.get(path, headers=op.headers), 404, "webhook_endpoint_not_found")

    records = await audit_records(session, endpoint["id"])
    assert [r["action"] for r in records] == [
        "webhook_endpoint.create",
        "webhook_endpoint.update",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint.delete",
    ]
    assert {r["after"]["application_id"] for r in records} == {app_id}
    assert records[1]["before"]["event_types"] == ["commission.available", "order.paid"]
    assert records[1]["after"]["status"] == "disabled"
    assert records[2]["after"]["previous_secret_expires_at"] is not None
    logged = json.dumps([(r["before"], r["after"]) for r in records])
    assert endpoint["secret"] not in logged
    assert new_secret not in logged
    assert 'secret"' not in logged


async def test_bad_input_gets_a_problem_with_a_stable_code(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    h = op.headers
    for body in ({"name": ""}, {"name": "   "}, {"name": "x" * 101}, {}, {"name": "a", "x": 1}):
        assert_problem(await client.post(APPS, json=body, headers=h), 422, "validation_error")
    unknown = f"{APPS}/{uuid.uuid4()}"
    assert_problem(await client.get(unknown, headers=h), 404, "application_not_found")
    assert_problem(
        await client.post(f"{unknown}/disable", json={"reason": "x"}, headers=h),
        404,
        "application_not_found",
    )
    assert_problem(
        await client.post(
            f"{unknown}/webhook-endpoints",
            json={"url": HOOK, "event_types": ["order.paid"]},
            headers=h,
        ),
        404,
        "application_not_found",
    )
    assert_problem(await client.get(f"{unknown}/events", headers=h), 404, "application_not_found")
    assert_problem(await client.get(f"{APPS}/not-a-uuid", headers=h), 422, "validation_error")

    app_id = await new_application(client, op)
    base = f"{APPS}/{app_id}"
    assert_problem(
        await client.post(f"{base}/disable", json={}, headers=h), 422, "validation_error"
    )
    assert_problem(
        await client.post(f"{base}/enable", headers=h), 409, "application_already_active"
    )
    await client.post(f"{base}/disable", json={"reason": "paused"}, headers=h)
    assert_problem(
        await client.post(f"{base}/disable", json={"reason": "again"}, headers=h),
        409,
        "application_already_disabled",
    )
    for event_types in (["order.exploded"], [], None):
        body: dict[str, Any] = {"url": HOOK}
        if event_types is not None:
            body["event_types"] = event_types
        assert_problem(
            await client.post(f"{base}/webhook-endpoints", json=body, headers=h),
            422,
            "validation_error",
        )
    refused = await client.post(
        f"{base}/webhook-endpoints",
        json={"url": HOOK, "event_types": ["order.paid", "product.stock_low", "api_key.created"]},
        headers=h,
    )
    problem = assert_problem(refused, 422, "event_type_not_available")
    assert problem["event_types"] == ["api_key.created", "product.stock_low"]
    assert "commission.accrued" in problem["available"]
    assert_problem(
        await client.post(
            f"{base}/webhook-endpoints",
            json={"url": "ftp://x.example.com/", "event_types": ["order.paid"]},
            headers=h,
        ),
        422,
        "validation_error",
    )
    made = await client.post(
        f"{base}/webhook-endpoints", json={"url": HOOK, "event_types": ["order.paid"]}, headers=h
    )
    path = f"{base}/webhook-endpoints/{made.json()['id']}"
    assert_problem(
        await client.patch(path, json={"event_types": ["return.requested"]}, headers=h),
        422,
        "event_type_not_available",
    )
    assert_problem(
        await client.post(f"{path}/rotate-secret", json={"overlap_seconds": -1}, headers=h),
        422,
        "validation_error",
    )
    assert_problem(
        await client.post(f"{base}/events/{uuid.uuid4()}/replay", json={}, headers=h),
        409,
        "application_disabled",
    )
    await client.post(f"{base}/enable", headers=h)
    assert_problem(
        await client.post(f"{base}/events/{uuid.uuid4()}/replay", json={}, headers=h),
        404,
        "event_not_found",
    )


async def test_an_application_has_at_most_16_endpoints(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    app_id = await new_application(client, op)
    body = {"url": HOOK, "event_types": ["order.paid"]}
    for _ in range(MAX_ENDPOINTS):
        made = await client.post(
            f"{APPS}/{app_id}/webhook-endpoints", json=body, headers=op.headers
        )
        assert made.status_code == 201, made.text
    refused = await client.post(f"{APPS}/{app_id}/webhook-endpoints", json=body, headers=op.headers)
    problem = assert_problem(refused, 409, "too_many_webhook_endpoints")
    assert problem["max_endpoints"] == MAX_ENDPOINTS
    # Another application has its own 16.
    other = await new_application(client, op)
    made = await client.post(f"{APPS}/{other}/webhook-endpoints", json=body, headers=op.headers)
    assert made.status_code == 201, made.text


async def test_a_retried_creation_with_its_idempotency_key_creates_one_application(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    headers = {**op.headers, **key()}
    first = await client.post(APPS, json={"name": "app"}, headers=headers)
    again = await client.post(APPS, json={"name": "app"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await audit_records(session, first.json()["id"])) == 1
    other = await client.post(APPS, json={"name": "another"}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")


async def test_only_operators_manage_applications(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    app_id = await new_application(client, op)
    person = await new_actor(client)
    for method, path in (
        ("POST", APPS),
        ("GET", APPS),
        ("GET", f"{APPS}/{app_id}"),
        ("POST", f"{APPS}/{app_id}/webhook-endpoints"),
        ("GET", f"{APPS}/{app_id}/events"),
    ):
        refused = await client.request(method, path, json={"name": "x"}, headers=person.headers)
        assert_problem(refused, 403, "forbidden")
    assert_problem(await client.get(APPS), 401, "unauthenticated")
