"""Managing webhook endpoints and reading events, deliveries and attempts through the API."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import api_key, bearer, person, supplier
from tests.webhooks.helpers import (
    CREATED,
    REVOKED,
    assert_problem,
    attempt,
    deliveries,
    emit,
    endpoint_row,
    endpoints_url,
    new_endpoint,
)
from tests.webhooks.receiver import Receiver
from xiaopu.kit.clock import Clock
from xiaopu.models import DeliveryStatus, EndpointStatus
from xiaopu.webhooks.service import MAX_ENDPOINTS

ENDPOINT_FIELDS = {
    "id",
    "url",
    "description",
    "event_types",
    "status",
    "disabled_reason",
    "failing_since",
    "previous_secret_expires_at",
    "created_at",
}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# Create, read, list: the secret is shown on create only.


async def test_create_returns_a_whsec_secret_once(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    response = await client.post(
        endpoints_url(supplier_id),
        json={
            "url": "https://hooks.example.com/in",
            "event_types": [REVOKED, CREATED, REVOKED],
            "description": "ERP",
        },
        headers=owner,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created.keys() == ENDPOINT_FIELDS | {"secret"}
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    assert created["url"] == "https://hooks.example.com/in"
    assert created["event_types"] == [CREATED, REVOKED]
    assert created["description"] == "ERP"
    assert created["status"] == "enabled"
    assert created["disabled_reason"] is None
    assert created["failing_since"] is None
    assert created["previous_secret_expires_at"] is None

    got = await client.get(f"{endpoints_url(supplier_id)}/{created['id']}", headers=owner)
    assert got.status_code == 200, got.text
    assert got.json() == {k: v for k, v in created.items() if k != "secret"}

    listed = await client.get(endpoints_url(supplier_id), headers=owner)
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item.keys() == ENDPOINT_FIELDS
    assert created["secret"] not in listed.text


async def test_every_endpoint_gets_its_own_secret(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    first = await new_endpoint(client, supplier_id, owner)
    second = await new_endpoint(client, supplier_id, owner)
    assert first["secret"] != second["secret"]


async def test_list_is_paginated_newest_first(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    ids = [(await new_endpoint(client, supplier_id, owner))["id"] for _ in range(3)]
    first = await client.get(endpoints_url(supplier_id), params={"limit": 2}, headers=owner)
    assert first.status_code == 200, first.text
    assert [e["id"] for e in first.json()["items"]] == ids[:0:-1]
    cursor = first.json()["next_cursor"]
    assert cursor
    second = await client.get(
        endpoints_url(supplier_id), params={"limit": 2, "cursor": cursor}, headers=owner
    )
    assert [e["id"] for e in second.json()["items"]] == ids[:1]
    assert second.json()["next_cursor"] is None


async def test_a_supplier_has_at_most_its_endpoint_limit(client: httpx.AsyncClient) -> None:
    # Each event fans out to every subscribed endpoint: the limit bounds one event's deliveries.
    supplier_id, owner = await supplier(client)
    made = [(await new_endpoint(client, supplier_id, owner))["id"] for _ in range(MAX_ENDPOINTS)]
    body = {"url": "https://h.example.com/hook", "event_types": [CREATED]}
    refused = await client.post(endpoints_url(supplier_id), json=body, headers=owner)
    problem = assert_problem(refused, 409, "too_many_webhook_endpoints")
    assert problem["max_endpoints"] == MAX_ENDPOINTS
    # Another supplier's limit is its own; deleting one makes room again.
    other_id, other_owner = await supplier(client)
    await new_endpoint(client, other_id, other_owner)
    deleted = await client.delete(f"{endpoints_url(supplier_id)}/{made[0]}", headers=owner)
    assert deleted.status_code == 204
    again = await client.post(endpoints_url(supplier_id), json=body, headers=owner)
    assert again.status_code == 201, again.text


INVALID_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"url": "https://h.example.com/", "event_types": ["order.exploded"]}, "event_types"),
    ({"url": "https://h.example.com/", "event_types": []}, "event_types"),
    ({"url": "https://h.example.com/"}, "event_types"),
    ({"url": "ftp://h.example.com/", "event_types": [CREATED]}, "url"),
    ({"url": "not a url", "event_types": [CREATED]}, "url"),
    ({"url": "https://h.example.com/", "event_types": [CREATED], "admin": True}, "admin"),
    (
        {"url": "https://h.example.com/", "event_types": [CREATED], "description": "x" * 201},
        "description",
    ),
]


async def test_create_validates_the_body(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    for body, loc in INVALID_BODIES:
        response = await client.post(endpoints_url(supplier_id), json=body, headers=owner)
        problem = assert_problem(response, 422, "validation_error")
        assert ["body", loc] in [e["loc"][:2] for e in problem["errors"]], body
    listed = await client.get(endpoints_url(supplier_id), headers=owner)
    assert listed.json()["items"] == []


async def test_unknown_event_type_on_update_is_422(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner)
    response = await client.patch(
        f"{endpoints_url(supplier_id)}/{endpoint['id']}",
        json={"event_types": ["nope.never"]},
        headers=owner,
    )
    assert_problem(response, 422, "validation_error")


async def test_a_url_longer_than_2048_characters_once_encoded_is_422(
    client: httpx.AsyncClient,
) -> None:
    supplier_id, owner = await supplier(client)
    url = "https://hooks.example.com/" + "茶" * 500  # 526 characters typed, 4526 encoded
    response = await client.post(
        endpoints_url(supplier_id), json={"url": url, "event_types": [CREATED]}, headers=owner
    )
    assert_problem(response, 422, "validation_error")


# https only, unless the app allows loopback (development and tests).


async def test_http_url_is_refused_when_loopback_is_not_allowed(
    strict_client: httpx.AsyncClient,
) -> None:
    client = strict_client
    supplier_id, owner = await supplier(client)
    response = await client.post(
        endpoints_url(supplier_id),
        json={"url": "http://hooks.example.com/in", "event_types": [CREATED]},
        headers=owner,
    )
    assert_problem(response, 422, "insecure_webhook_url")
    assert (await client.get(endpoints_url(supplier_id), headers=owner)).json()["items"] == []

    endpoint = await new_endpoint(client, supplier_id, owner, url="https://hooks.example.com/in")
    patched = await client.patch(
        f"{endpoints_url(supplier_id)}/{endpoint['id']}",
        json={"url": "http://hooks.example.com/other"},
        headers=owner,
    )
    assert_problem(patched, 422, "insecure_webhook_url")
    got = await client.get(f"{endpoints_url(supplier_id)}/{endpoint['id']}", headers=owner)
    assert got.json()["url"] == "https://hooks.example.com/in"


async def test_http_url_is_accepted_when_loopback_is_allowed(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url="http://127.0.0.1:8080/in")
    assert endpoint["url"] == "http://127.0.0.1:8080/in"


# Update, disable, re-enable, delete.


async def test_patch_changes_only_what_it_names(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, description="old")
    url = f"{endpoints_url(supplier_id)}/{endpoint['id']}"

    response = await client.patch(
        url,
        json={"url": "https://other.example.com/h", "event_types": [REVOKED, CREATED]},
        headers=owner,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "secret" not in body
    assert body["url"] == "https://other.example.com/h"
    assert body["event_types"] == [CREATED, REVOKED]
    assert body["description"] == "old"

    cleared = await client.patch(url, json={"description": None}, headers=owner)
    assert cleared.json()["description"] is None
    assert cleared.json()["url"] == "https://other.example.com/h"


async def test_disabling_cancels_pending_deliveries_and_reenabling_clears_the_reason(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    url = f"{endpoints_url(supplier_id)}/{endpoint['id']}"
    hook.script = [500]
    (delivery,) = await deliveries(session, endpoint_id=endpoint["id"])
    await attempt(session, http, delivery.id, 1)
    failing = await client.get(url, headers=owner)
    assert failing.json()["failing_since"] is not None

    disabled = await client.patch(url, json={"enabled": False}, headers=owner)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["status"] == "disabled"
    assert disabled.json()["disabled_reason"]
    (delivery,) = await deliveries(session, endpoint_id=endpoint["id"])
    assert delivery.status is DeliveryStatus.cancelled
    assert delivery.next_attempt_at is None

    # A disabled endpoint gets no new deliveries.
    await emit(session, supplier_id)
    assert len(await deliveries(session, endpoint_id=endpoint["id"])) == 1

    enabled = await client.patch(url, json={"enabled": True}, headers=owner)
    assert enabled.json()["status"] == "enabled"
    assert enabled.json()["disabled_reason"] is None
    assert enabled.json()["failing_since"] is None
    await emit(session, supplier_id)
    assert len(await deliveries(session, endpoint_id=endpoint["id"])) == 2


async def test_delete_removes_the_endpoint_and_its_deliveries(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner)
    await emit(session, supplier_id)
    url = f"{endpoints_url(supplier_id)}/{endpoint['id']}"

    response = await client.delete(url, headers=owner)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_problem(await client.get(url, headers=owner), 404, "webhook_endpoint_not_found")
    assert_problem(await client.delete(url, headers=owner), 404, "webhook_endpoint_not_found")
    assert await deliveries(session, endpoint_id=endpoint["id"]) == []


async def test_unknown_endpoint_is_404_on_every_route(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    url = f"{endpoints_url(supplier_id)}/{uuid.uuid4()}"
    for method, path, body in [
        ("GET", url, None),
        ("PATCH", url, {"description": "x"}),
        ("DELETE", url, None),
        ("POST", f"{url}/rotate-secret", {}),
        ("GET", f"{url}/deliveries", None),
        ("GET", f"{url}/attempts", None),
    ]:
        response = await client.request(method, path, json=body, headers=owner)
        assert_problem(response, 404, "webhook_endpoint_not_found")


# Secret rotation.


async def test_rotate_returns_a_new_secret_and_keeps_the_old_for_the_overlap(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    now = test_clock.freeze(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner)
    url = f"{endpoints_url(supplier_id)}/{endpoint['id']}"

    response = await client.post(f"{url}/rotate-secret", json={}, headers=owner)
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != endpoint["secret"]
    assert when(rotated["previous_secret_expires_at"]) == now + timedelta(hours=24)
    row = await endpoint_row(session, endpoint["id"])
    assert row.secret == rotated["secret"]
    assert row.previous_secret == endpoint["secret"]

    got = await client.get(url, headers=owner)
    assert "secret" not in got.json()
    assert rotated["secret"] not in got.text
    assert endpoint["secret"] not in got.text
    assert when(got.json()["previous_secret_expires_at"]) == now + timedelta(hours=24)

    short = await client.post(f"{url}/rotate-secret", json={"overlap_seconds": 60}, headers=owner)
    assert when(short.json()["previous_secret_expires_at"]) == now + timedelta(seconds=60)


async def test_rotate_validates_the_overlap(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner)
    for overlap in (-1, 7 * 86_400 + 1, "a day"):
        response = await client.post(
            f"{endpoints_url(supplier_id)}/{endpoint['id']}/rotate-secret",
            json={"overlap_seconds": overlap},
            headers=owner,
        )
        assert_problem(response, 422, "validation_error")
    got = await client.get(f"{endpoints_url(supplier_id)}/{endpoint['id']}", headers=owner)
    assert got.json()["previous_secret_expires_at"] is None


# Events, deliveries and attempts.


async def test_events_deliveries_and_attempts_are_listed(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    supplier_id, owner = await supplier(client)
    hook.script = [503]
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    key = await api_key(client, supplier_id, owner, ["supplier:read"])
    (delivery,) = await deliveries(session, endpoint_id=endpoint["id"])
    await attempt(session, http, delivery.id, 1)
    await attempt(session, http, delivery.id, 2)

    events = await client.get(f"/v1/suppliers/{supplier_id}/events", headers=owner)
    assert events.status_code == 200, events.text
    (event,) = events.json()["items"]
    assert event["type"] == CREATED
    assert event["id"] == str(delivery.event_id)
    assert event["data"]["id"] == key["id"]
    assert "key" not in event["data"]

    listed = await client.get(
        f"{endpoints_url(supplier_id)}/{endpoint['id']}/deliveries", headers=owner
    )
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item["id"] == str(delivery.id)
    assert item["event_id"] == event["id"]
    assert item["status"] == "succeeded"
    assert item["attempts"] == 2
    assert item["next_attempt_at"] is None

    tried = await client.get(
        f"{endpoints_url(supplier_id)}/{endpoint['id']}/attempts", headers=owner
    )
    assert tried.status_code == 200, tried.text
    newest, oldest = tried.json()["items"]
    assert (oldest["status_code"], oldest["succeeded"]) == (503, False)
    assert (newest["status_code"], newest["succeeded"]) == (204, True)
    assert oldest["delivery_id"] == str(delivery.id)
    assert oldest["response_snippet"] == "ok"


# Who may manage: members and keys with webhooks:manage; others 403; other tenants 404.


def every_route(supplier_id: str, endpoint_id: str, event_id: str) -> list[tuple[str, str, Any]]:
    base = f"/v1/suppliers/{supplier_id}"
    one = f"{base}/webhook-endpoints/{endpoint_id}"
    return [
        (
            "POST",
            f"{base}/webhook-endpoints",
            {"url": "https://x.example.com/", "event_types": [CREATED]},
        ),
        ("GET", f"{base}/webhook-endpoints", None),
        ("GET", one, None),
        ("PATCH", one, {"description": "hijacked"}),
        ("POST", f"{one}/rotate-secret", {}),
        ("GET", f"{one}/deliveries", None),
        ("GET", f"{one}/attempts", None),
        ("GET", f"{base}/events", None),
        ("POST", f"{base}/events/{event_id}/replay", {}),
        ("DELETE", one, None),
    ]


async def tenant_with_everything(
    client: httpx.AsyncClient, session: AsyncSession
) -> tuple[str, dict[str, str], dict[str, Any], str]:
    """A supplier with an endpoint and an event delivered to it."""
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner)
    event = await emit(session, supplier_id)
    return supplier_id, owner, endpoint, str(event.id)


async def test_a_key_with_webhooks_manage_can_manage(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner = await supplier(client)
    key = bearer((await api_key(client, supplier_id, owner, ["webhooks:manage"]))["key"])
    endpoint = await new_endpoint(client, supplier_id, key)
    assert endpoint["secret"].startswith("whsec_")
    event = await emit(session, supplier_id)
    for method, path, body in every_route(supplier_id, endpoint["id"], str(event.id)):
        response = await client.request(method, path, json=body, headers=key)
        assert response.status_code in (200, 201, 202, 204), (method, path, response.text)
    assert_problem(
        await client.get(f"{endpoints_url(supplier_id)}/{endpoint['id']}", headers=key),
        404,
        "webhook_endpoint_not_found",
    )


async def test_keys_without_webhooks_manage_get_403(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, owner, endpoint, event_id = await tenant_with_everything(client, session)
    scopes = ["supplier:read", "products:read", "products:write", "orders:read", "orders:write"]
    key = bearer((await api_key(client, supplier_id, owner, scopes))["key"])
    for method, path, body in every_route(supplier_id, endpoint["id"], event_id):
        response = await client.request(method, path, json=body, headers=key)
        assert_problem(response, 403, "insufficient_scope")
    row = await endpoint_row(session, endpoint["id"])
    assert row.description is None
    assert row.secret == endpoint["secret"]


async def test_no_credentials_get_401(client: httpx.AsyncClient, session: AsyncSession) -> None:
    supplier_id, _, endpoint, event_id = await tenant_with_everything(client, session)
    for method, path, body in every_route(supplier_id, endpoint["id"], event_id):
        response = await client.request(method, path, json=body)
        assert_problem(response, 401, "unauthenticated")


async def test_other_tenants_and_strangers_get_404_everywhere(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, _, endpoint, event_id = await tenant_with_everything(client, session)
    other_id, other_owner = await supplier(client)
    other_key = bearer((await api_key(client, other_id, other_owner, ["webhooks:manage"]))["key"])
    stranger = await person(client)

    for caller in (other_owner, other_key, stranger):
        for method, path, body in every_route(supplier_id, endpoint["id"], event_id):
            response = await client.request(method, path, json=body, headers=caller)
            assert_problem(response, 404, "supplier_not_found")

    # Under their own supplier, the other tenant's ids do not exist either.
    for caller in (other_owner, other_key):
        for method, path, body in every_route(other_id, endpoint["id"], event_id):
            response = await client.request(method, path, json=body, headers=caller)
            if path.endswith("/replay"):
                assert_problem(response, 404, "event_not_found")
            elif endpoint["id"] in path:
                assert_problem(response, 404, "webhook_endpoint_not_found")
            else:
                assert response.status_code in (200, 201), response.text
                assert endpoint["id"] not in response.text
                assert event_id not in response.text
        replay_to_theirs = await client.post(
            f"/v1/suppliers/{other_id}/events/{(await emit(session, other_id)).id}/replay",
            json={"endpoint_id": endpoint["id"]},
            headers=caller,
        )
        assert_problem(replay_to_theirs, 404, "webhook_endpoint_not_found")

    row = await endpoint_row(session, endpoint["id"])
    assert row.description is None
    assert row.secret == endpoint["secret"]
    assert row.status is EndpointStatus.enabled
    assert len(await deliveries(session, endpoint_id=endpoint["id"])) == 1
