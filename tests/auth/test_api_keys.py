"""Supplier API keys: create, list, revoke (owners only) and use as Bearer credentials."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import (
    account_id_of,
    add_member,
    assert_problem,
    assert_validation_error,
    cursor_of,
)
from tests.factories import api_key, bearer, person, supplier
from xiaopu.kit.clock import Clock
from xiaopu.models import MemberRole

READ = "supplier:read"


def keys_url(supplier_id: str) -> str:
    return f"/v1/suppliers/{supplier_id}/api-keys"


async def list_keys(
    client: httpx.AsyncClient, supplier_id: str, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get(keys_url(supplier_id), headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed_key(
    client: httpx.AsyncClient, supplier_id: str, owner: dict[str, str], key_id: str
) -> dict[str, Any]:
    items = (await list_keys(client, supplier_id, owner))["items"]
    return next(k for k in items if k["id"] == key_id)


async def revoke(
    client: httpx.AsyncClient, supplier_id: str, key_id: str, headers: dict[str, str]
) -> httpx.Response:
    return await client.delete(f"{keys_url(supplier_id)}/{key_id}", headers=headers)


async def read_supplier(
    client: httpx.AsyncClient, supplier_id: str, headers: dict[str, str]
) -> httpx.Response:
    return await client.get(f"/v1/suppliers/{supplier_id}", headers=headers)


# Creating and listing.


async def test_create_returns_the_secret_once(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    key = await api_key(client, supplier_id, owner, ["products:read", READ])

    assert key["key"].startswith("xpk_")
    assert len(key["key"]) > 40
    assert key["prefix"] == key["key"][:12]
    assert key["supplier_id"] == supplier_id
    assert key["name"] == "ERP"
    assert key["scopes"] == ["products:read", READ]
    assert key["last_used_at"] is None
    assert key["revoked_at"] is None


async def test_list_never_shows_the_secret(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])

    page = await list_keys(client, supplier_id, owner)

    assert [k["id"] for k in page["items"]] == [key["id"]]
    listed = page["items"][0]
    assert "key" not in listed
    assert key["key"] not in str(page)
    assert listed["prefix"] == key["prefix"]
    assert page["next_cursor"] is None


async def test_every_key_has_its_own_secret(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    first = await api_key(client, supplier_id, owner, [READ])
    second = await api_key(client, supplier_id, owner, [READ])

    assert first["key"] != second["key"]
    assert first["id"] != second["id"]


async def test_duplicate_scopes_are_stored_once(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    key = await api_key(client, supplier_id, owner, [READ, READ])

    assert key["scopes"] == [READ]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "ERP", "scopes": []}, ("body", "scopes")),
        ({"name": "ERP", "scopes": ["admin:everything"]}, ("body", "scopes", 0)),
        ({"name": "", "scopes": [READ]}, ("body", "name")),
        ({"name": "x" * 81, "scopes": [READ]}, ("body", "name")),
        ({"scopes": [READ]}, ("body", "name")),
        ({"name": "ERP"}, ("body", "scopes")),
        ({"name": "ERP", "scopes": [READ], "supplier_id": "x"}, ("body", "supplier_id")),
    ],
)
async def test_create_validates_the_body(
    client: httpx.AsyncClient, body: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    supplier_id, owner = await supplier(client)

    response = await client.post(keys_url(supplier_id), json=body, headers=owner)

    assert_validation_error(response, *loc)


# Using a key.


async def test_a_key_with_supplier_read_reads_its_supplier(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])

    response = await read_supplier(client, supplier_id, bearer(key["key"]))

    assert response.status_code == 200, response.text
    assert response.json()["id"] == supplier_id


async def test_a_key_without_supplier_read_is_refused(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, ["products:read", "orders:write"])

    response = await read_supplier(client, supplier_id, bearer(key["key"]))

    assert_problem(response, 403, "insufficient_scope")


async def test_using_a_key_sets_last_used_at(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])

    assert (await read_supplier(client, supplier_id, bearer(key["key"]))).status_code == 200

    listed = await listed_key(client, supplier_id, owner, key["id"])
    assert listed["last_used_at"] is not None


async def test_last_used_at_is_refreshed_at_most_once_a_minute(
    client: httpx.AsyncClient, test_clock: Clock
) -> None:
    test_clock.freeze()
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])
    await read_supplier(client, supplier_id, bearer(key["key"]))
    first = (await listed_key(client, supplier_id, owner, key["id"]))["last_used_at"]

    test_clock.advance(timedelta(seconds=30))
    await read_supplier(client, supplier_id, bearer(key["key"]))
    after_30s = (await listed_key(client, supplier_id, owner, key["id"]))["last_used_at"]
    test_clock.advance(timedelta(seconds=31))
    await read_supplier(client, supplier_id, bearer(key["key"]))
    after_61s = (await listed_key(client, supplier_id, owner, key["id"]))["last_used_at"]

    assert after_30s == first
    elapsed = datetime.fromisoformat(after_61s) - datetime.fromisoformat(first)
    assert elapsed == timedelta(seconds=61)


async def test_a_refused_use_does_not_set_last_used_at(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, ["products:read"])
    assert_problem(
        await read_supplier(client, supplier_id, bearer(key["key"])), 403, "insufficient_scope"
    )

    listed = await listed_key(client, supplier_id, owner, key["id"])

    assert listed["last_used_at"] is None


async def test_an_unknown_key_is_invalid(client: httpx.AsyncClient) -> None:
    supplier_id, _ = await supplier(client)

    response = await read_supplier(client, supplier_id, bearer("xpk_" + "A" * 43))

    assert_problem(response, 401, "invalid_api_key")


async def test_a_key_of_supplier_a_cannot_reach_supplier_b(client: httpx.AsyncClient) -> None:
    supplier_a, owner_a = await supplier(client)
    supplier_b, _ = await supplier(client)
    key = await api_key(client, supplier_a, owner_a, [READ])

    response = await read_supplier(client, supplier_b, bearer(key["key"]))

    assert_problem(response, 404, "supplier_not_found")


async def test_a_key_cannot_list_keys(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ, "webhooks:manage"])

    response = await client.get(keys_url(supplier_id), headers=bearer(key["key"]))

    assert_problem(response, 403, "forbidden")


async def test_a_key_cannot_create_keys(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])

    response = await client.post(
        keys_url(supplier_id), json={"name": "mine", "scopes": [READ]}, headers=bearer(key["key"])
    )

    assert_problem(response, 403, "forbidden")
    assert len((await list_keys(client, supplier_id, owner))["items"]) == 1


async def test_a_key_cannot_revoke_keys(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])

    response = await revoke(client, supplier_id, key["id"], bearer(key["key"]))

    assert_problem(response, 403, "forbidden")
    assert (await read_supplier(client, supplier_id, bearer(key["key"]))).status_code == 200


async def test_api_keys_need_credentials(client: httpx.AsyncClient) -> None:
    supplier_id, _ = await supplier(client)

    response = await client.get(keys_url(supplier_id))

    assert_problem(response, 401, "unauthenticated")


# Revoking.


async def test_revoke_marks_the_key_and_it_stops_working(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])

    response = await revoke(client, supplier_id, key["id"], owner)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == key["id"]
    assert response.json()["revoked_at"] is not None
    assert "key" not in response.json()
    used = await read_supplier(client, supplier_id, bearer(key["key"]))
    assert_problem(used, 401, "invalid_api_key")


async def test_revoked_keys_stay_listed_as_revoked(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])
    await revoke(client, supplier_id, key["id"], owner)

    listed = await listed_key(client, supplier_id, owner, key["id"])

    assert listed["revoked_at"] is not None


async def test_revoking_twice_keeps_the_first_revocation_time(
    client: httpx.AsyncClient, test_clock: Clock
) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])
    first = (await revoke(client, supplier_id, key["id"], owner)).json()["revoked_at"]
    test_clock.advance(timedelta(minutes=10))

    response = await revoke(client, supplier_id, key["id"], owner)

    assert response.status_code == 200, response.text
    assert response.json()["revoked_at"] == first


async def test_revoking_leaves_other_keys_working(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    revoked = await api_key(client, supplier_id, owner, [READ])
    kept = await api_key(client, supplier_id, owner, [READ])

    await revoke(client, supplier_id, revoked["id"], owner)

    assert (await read_supplier(client, supplier_id, bearer(kept["key"]))).status_code == 200


async def test_revoking_an_unknown_key_is_not_found(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    response = await revoke(client, supplier_id, "0190b6a4-0000-7000-8000-000000000000", owner)

    assert_problem(response, 404, "api_key_not_found")


async def test_an_owner_cannot_revoke_another_suppliers_key_through_their_own(
    client: httpx.AsyncClient,
) -> None:
    supplier_a, owner_a = await supplier(client)
    supplier_b, owner_b = await supplier(client)
    key = await api_key(client, supplier_a, owner_a, [READ])

    response = await revoke(client, supplier_b, key["id"], owner_b)

    assert_problem(response, 404, "api_key_not_found")
    assert (await read_supplier(client, supplier_a, bearer(key["key"]))).status_code == 200


# Who may manage keys.


@pytest.fixture
async def supplier_a(client: httpx.AsyncClient) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(id, owner headers, one API key) of a supplier."""
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, [READ])
    return supplier_id, owner, key


@pytest.fixture(params=["owner of another supplier", "non-member"])
async def outsider(client: httpx.AsyncClient, request: pytest.FixtureRequest) -> dict[str, str]:
    """Auth headers of someone who is not a member of supplier_a."""
    if request.param == "non-member":
        return await person(client)
    _, owner_of_b = await supplier(client)
    return owner_of_b


async def test_outsiders_cannot_list_keys(
    client: httpx.AsyncClient,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
    outsider: dict[str, str],
) -> None:
    response = await client.get(keys_url(supplier_a[0]), headers=outsider)

    assert_problem(response, 404, "supplier_not_found")


async def test_outsiders_cannot_create_keys(
    client: httpx.AsyncClient,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
    outsider: dict[str, str],
) -> None:
    supplier_id, owner, _ = supplier_a

    response = await client.post(
        keys_url(supplier_id), json={"name": "x", "scopes": [READ]}, headers=outsider
    )

    assert_problem(response, 404, "supplier_not_found")
    assert len((await list_keys(client, supplier_id, owner))["items"]) == 1


async def test_outsiders_cannot_revoke_keys(
    client: httpx.AsyncClient,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
    outsider: dict[str, str],
) -> None:
    supplier_id, _, key = supplier_a

    response = await revoke(client, supplier_id, key["id"], outsider)

    assert_problem(response, 404, "supplier_not_found")
    assert (await read_supplier(client, supplier_id, bearer(key["key"]))).status_code == 200


async def test_outsiders_cannot_read_the_supplier(
    client: httpx.AsyncClient,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
    outsider: dict[str, str],
) -> None:
    response = await read_supplier(client, supplier_a[0], outsider)

    assert_problem(response, 404, "supplier_not_found")


@pytest.fixture
async def staff(
    client: httpx.AsyncClient,
    session: AsyncSession,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
) -> dict[str, str]:
    """Auth headers of a staff member of supplier_a."""
    headers = await person(client)
    await add_member(session, supplier_a[0], await account_id_of(client, headers), MemberRole.staff)
    return headers


async def test_staff_can_read_the_supplier(
    client: httpx.AsyncClient,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
    staff: dict[str, str],
) -> None:
    response = await read_supplier(client, supplier_a[0], staff)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == supplier_a[0]


async def test_staff_cannot_create_keys(
    client: httpx.AsyncClient,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
    staff: dict[str, str],
) -> None:
    response = await client.post(
        keys_url(supplier_a[0]), json={"name": "x", "scopes": [READ]}, headers=staff
    )

    assert_problem(response, 403, "forbidden")


async def test_staff_cannot_list_keys(
    client: httpx.AsyncClient,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
    staff: dict[str, str],
) -> None:
    response = await client.get(keys_url(supplier_a[0]), headers=staff)

    assert_problem(response, 403, "forbidden")


async def test_staff_cannot_revoke_keys(
    client: httpx.AsyncClient,
    supplier_a: tuple[str, dict[str, str], dict[str, Any]],
    staff: dict[str, str],
) -> None:
    supplier_id, _, key = supplier_a

    response = await revoke(client, supplier_id, key["id"], staff)

    assert_problem(response, 403, "forbidden")


# Pagination.


async def test_pages_of_two_walk_every_key_newest_first(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    created = [(await api_key(client, supplier_id, owner, [READ]))["id"] for _ in range(5)]

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await list_keys(client, supplier_id, owner, **params)
        sizes.append(len(page["items"]))
        seen += [k["id"] for k in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sizes == [2, 2, 1]
    assert seen == list(reversed(created))


async def test_a_full_last_page_has_no_cursor(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    for _ in range(2):
        await api_key(client, supplier_id, owner, [READ])

    page = await list_keys(client, supplier_id, owner, limit=2)

    assert len(page["items"]) == 2
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("!!!", id="not base64"),
        pytest.param("bm90IGpzb24", id="not json"),
        pytest.param(cursor_of({"id": 1}), id="not a list"),
        pytest.param(cursor_of([]), id="empty list"),
        pytest.param(cursor_of(["not-a-uuid"]), id="not a uuid"),
        pytest.param(cursor_of([[1]]), id="nested list"),
    ],
)
async def test_a_bad_cursor_is_a_400(client: httpx.AsyncClient, cursor: str) -> None:
    supplier_id, owner = await supplier(client)

    response = await client.get(keys_url(supplier_id), headers=owner, params={"cursor": cursor})

    assert_problem(response, 400, "invalid_cursor")


@pytest.mark.parametrize("limit", [0, 101, -1])
async def test_limit_out_of_range_is_a_422(client: httpx.AsyncClient, limit: int) -> None:
    supplier_id, owner = await supplier(client)

    response = await client.get(keys_url(supplier_id), headers=owner, params={"limit": limit})

    assert_validation_error(response, "query", "limit")


async def test_limit_100_is_allowed(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    page = await list_keys(client, supplier_id, owner, limit=100)

    assert page == {"items": [], "next_cursor": None}
