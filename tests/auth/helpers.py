"""Helpers for the auth and supplier tests: problem assertions, raw calls and forged tokens."""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import PASSWORD, bearer
from xiaopu.config import Settings
from xiaopu.kit.clock import utcnow
from xiaopu.models import MemberRole, SupplierMember

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is application/problem+json with this status and code; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"] == f"urn:xiaopu:problem:{code}"
    return body


def assert_validation_error(response: httpx.Response, *loc: str | int) -> dict[str, Any]:
    """A 422 validation_error whose `errors` list names the field at `loc`."""
    body = assert_problem(response, 422, "validation_error")
    locs = [tuple(e["loc"]) for e in body["errors"]]
    assert tuple(loc) in locs, locs
    return body


def unique_phone() -> str:
    """A valid mainland China mobile number in E.164 form."""
    return f"+86139{random.randint(0, 99_999_999):08d}"


async def post_signup(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("password", PASSWORD)
    return await client.post("/v1/auth/signup", json=body)


async def signup_ok(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await post_signup(client, **body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def post_login(
    client: httpx.AsyncClient, login: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"login": login, "password": password})


async def login_ok(
    client: httpx.AsyncClient, login: str, password: str = PASSWORD
) -> dict[str, Any]:
    response = await post_login(client, login, password)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def post_refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/me", headers=bearer(token))


async def account_id_of(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def add_member(
    session: AsyncSession, supplier_id: str, account_id: str, role: MemberRole
) -> None:
    session.add(
        SupplierMember(
            supplier_id=uuid.UUID(supplier_id), account_id=uuid.UUID(account_id), role=role
        )
    )
    await session.commit()


def access_claims(settings: Settings, account_id: str, **overrides: Any) -> dict[str, Any]:
    """Claims as the app issues them, valid now; overrides replace (None removes) a claim."""
    now = utcnow()
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": account_id,
        "sid": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=15)).timestamp()),
        "jti": uuid.uuid4().hex[:16],
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def forge(claims: dict[str, Any], key: str | None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def with_payload(token: str, **changes: Any) -> str:
    """The token with claims changed but the original signature kept (a tampered token)."""
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims.update(changes)
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def with_flipped_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    first = "A" if signature[0] != "A" else "B"
    return ".".join([header, payload, first + signature[1:]])


def cursor_of(values: Any) -> str:
    """A cursor in the app's encoding around arbitrary JSON (to build bad cursors)."""
    return _b64(json.dumps(values).encode())


@asynccontextmanager
async def app_client(app: FastAPI, ip: str = "198.51.100.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` that appears to come from `ip`."""
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
