"""Small async factories that build test data through the API, as a client would."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.models import Operator

PASSWORD = "correct horse battery"


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def signup(
    client: httpx.AsyncClient, *, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post(
        "/v1/auth/signup", json={"email": email or unique_email(), "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def person(client: httpx.AsyncClient) -> dict[str, str]:
    """Auth headers of a new person."""
    body = await signup(client)
    return bearer(body["tokens"]["access_token"])


async def supplier(
    client: httpx.AsyncClient, owner: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """(supplier id, owner's auth headers) of a new supplier."""
    owner = owner or await person(client)
    response = await client.post("/v1/suppliers", json={"name": "Test Farm"}, headers=owner)
    assert response.status_code == 201, response.text
    return str(response.json()["id"]), owner


async def api_key(
    client: httpx.AsyncClient, supplier_id: str, owner: dict[str, str], scopes: list[str]
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/suppliers/{supplier_id}/api-keys",
        json={"name": "ERP", "scopes": scopes},
        headers=owner,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def make_operator(session: AsyncSession, account_id: str) -> None:
    session.add(Operator(account_id=uuid.UUID(account_id)))
    await session.commit()
