"""Suppliers: sign-up as owner, reading one's own supplier, and 404 for everyone else."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import (
    account_id_of,
    add_member,
    assert_problem,
    assert_validation_error,
)
from tests.factories import api_key, bearer, person, supplier
from xiaopu.models import MemberRole, SupplierMember


async def test_create_makes_a_pending_supplier_owned_by_the_caller(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await person(client)

    response = await client.post("/v1/suppliers", json={"name": "Green Valley Farm"}, headers=owner)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "Green Valley Farm"
    assert created["status"] == "pending"
    assert set(created) == {
        "id",
        "name",
        "status",
        "status_reason",
        "contact_name",
        "contact_email",
        "contact_phone",
        "shipping_fee_minor",
        "shipping_currency",
        "payout_method",
        "payout_account_name",
        "payout_account_hint",
        "created_at",
    }
    assert created["payout_account_hint"] is None
    member = await session.scalar(
        select(SupplierMember).where(SupplierMember.supplier_id == uuid.UUID(created["id"]))
    )
    assert member is not None
    assert str(member.account_id) == await account_id_of(client, owner)
    assert member.role is MemberRole.owner


async def test_the_owner_reads_their_supplier(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    response = await client.get(f"/v1/suppliers/{supplier_id}", headers=owner)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == supplier_id
    assert response.json()["status"] == "pending"


async def test_the_owner_may_manage_api_keys(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    response = await client.get(f"/v1/suppliers/{supplier_id}/api-keys", headers=owner)

    assert response.status_code == 200, response.text


async def test_one_person_may_own_several_suppliers(client: httpx.AsyncClient) -> None:
    first, owner = await supplier(client)
    second, _ = await supplier(client, owner)

    for supplier_id in (first, second):
        response = await client.get(f"/v1/suppliers/{supplier_id}", headers=owner)
        assert response.status_code == 200, response.text
    assert first != second


async def test_a_stranger_gets_404(client: httpx.AsyncClient) -> None:
    supplier_id, _ = await supplier(client)

    response = await client.get(f"/v1/suppliers/{supplier_id}", headers=await person(client))

    assert_problem(response, 404, "supplier_not_found")


async def test_the_owner_of_another_supplier_gets_404(client: httpx.AsyncClient) -> None:
    supplier_id, _ = await supplier(client)
    _, other_owner = await supplier(client)

    response = await client.get(f"/v1/suppliers/{supplier_id}", headers=other_owner)

    assert_problem(response, 404, "supplier_not_found")


async def test_a_staff_member_reads_the_supplier(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    supplier_id, _ = await supplier(client)
    staff = await person(client)
    await add_member(session, supplier_id, await account_id_of(client, staff), MemberRole.staff)

    response = await client.get(f"/v1/suppliers/{supplier_id}", headers=staff)

    assert response.status_code == 200, response.text


async def test_a_random_id_gets_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/suppliers/{uuid.uuid4()}", headers=await person(client))

    assert_problem(response, 404, "supplier_not_found")


async def test_a_random_id_looks_like_someone_elses_supplier(client: httpx.AsyncClient) -> None:
    """No difference between "does not exist" and "not yours": ids cannot be probed."""
    supplier_id, _ = await supplier(client)
    stranger = await person(client)

    theirs = await client.get(f"/v1/suppliers/{supplier_id}", headers=stranger)
    missing = await client.get(f"/v1/suppliers/{uuid.uuid4()}", headers=stranger)

    assert theirs.json() == missing.json()


@pytest.mark.parametrize("supplier_id", ["not-a-uuid", "123", "0190b6a4-0000-7000-8000"])
async def test_a_non_uuid_id_is_a_422(client: httpx.AsyncClient, supplier_id: str) -> None:
    response = await client.get(f"/v1/suppliers/{supplier_id}", headers=await person(client))

    assert_validation_error(response, "path", "supplier_id")


async def test_reading_needs_credentials(client: httpx.AsyncClient) -> None:
    supplier_id, _ = await supplier(client)

    response = await client.get(f"/v1/suppliers/{supplier_id}")

    assert_problem(response, 401, "unauthenticated")


async def test_creating_needs_credentials(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/suppliers", json={"name": "Farm"})

    assert_problem(response, 401, "unauthenticated")


async def test_an_api_key_cannot_create_suppliers(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, ["supplier:read"])

    response = await client.post("/v1/suppliers", json={"name": "Farm"}, headers=bearer(key["key"]))

    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 121}, "name"),
        ({"name": "Farm", "status": "active"}, "status"),
        ({"name": "Farm", "owner_account_id": str(uuid.uuid4())}, "owner_account_id"),
    ],
)
async def test_create_validates_the_body(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/v1/suppliers", json=body, headers=await person(client))

    assert_validation_error(response, "body", field)
