"""A test-only app with routes that require an Idempotency-Key, and helpers to call them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import bearer, signup
from xiaopu.app import create_app
from xiaopu.auth.auth import CurrentPerson
from xiaopu.config import Settings
from xiaopu.db import DbSession
from xiaopu.errors import AppError
from xiaopu.idempotency.service import RequiredIdempotency
from xiaopu.models import IdempotencyKey, SupplierMember
from xiaopu.suppliers import service
from xiaopu.suppliers.schemas import SupplierCreate, SupplierOut

PREFIX = "/test/idempotency"
REQUIRED = f"{PREFIX}/suppliers"
OTHER = f"{PREFIX}/other-suppliers"
FAILING = f"{PREFIX}/failing-suppliers"
CRASHING = f"{PREFIX}/crashing-suppliers"
SLOW = f"{PREFIX}/slow-suppliers"
GATED = f"{PREFIX}/gated-suppliers"
OPTIONAL = "/v1/suppliers"


class WorkFailed(AppError):
    status = 409
    code = "test_work_failed"
    title = "The test route's work failed after writing"


@dataclass
class Controls:
    """Knobs of the test routes, kept on app.state.controls."""

    failures_left: int = 0
    sleep_seconds: float = 0.05
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    calls: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1


def _controls(request: Request) -> Controls:
    controls: Controls = request.app.state.controls
    return controls


def _router() -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    @router.post("/suppliers", status_code=201, operation_id="test-suppliers")
    async def create_required(
        body: SupplierCreate,
        person: CurrentPerson,
        session: DbSession,
        idempotency: RequiredIdempotency,
        request: Request,
    ) -> SupplierOut:
        async def work() -> SupplierOut:
            _controls(request).count("suppliers")
            return await service.create(session, person.account_id, body, auto_approve=False)

        return await idempotency.once(work)

    @router.post("/other-suppliers", status_code=201, operation_id="test-other-suppliers")
    async def create_other(
        body: SupplierCreate,
        person: CurrentPerson,
        session: DbSession,
        idempotency: RequiredIdempotency,
    ) -> SupplierOut:
        return await idempotency.once(
            lambda: service.create(session, person.account_id, body, auto_approve=False)
        )

    @router.post("/failing-suppliers", status_code=201, operation_id="test-failing-suppliers")
    async def create_failing(
        body: SupplierCreate,
        person: CurrentPerson,
        session: DbSession,
        idempotency: RequiredIdempotency,
        request: Request,
    ) -> SupplierOut:
        async def work() -> SupplierOut:
            created = await service.create(session, person.account_id, body, auto_approve=False)
            controls = _controls(request)
            if controls.failures_left > 0:
                controls.failures_left -= 1
                raise WorkFailed()
            return created

        return await idempotency.once(work)

    @router.post("/crashing-suppliers", status_code=201, operation_id="test-crashing-suppliers")
    async def create_crashing(
        body: SupplierCreate,
        person: CurrentPerson,
        session: DbSession,
        idempotency: RequiredIdempotency,
        request: Request,
    ) -> SupplierOut:
        async def work() -> SupplierOut:
            created = await service.create(session, person.account_id, body, auto_approve=False)
            controls = _controls(request)
            if controls.failures_left > 0:
                controls.failures_left -= 1
                raise RuntimeError("the work crashed after writing")
            return created

        return await idempotency.once(work)

    @router.post("/slow-suppliers", status_code=201, operation_id="test-slow-suppliers")
    async def create_slow(
        body: SupplierCreate,
        person: CurrentPerson,
        session: DbSession,
        idempotency: RequiredIdempotency,
        request: Request,
    ) -> SupplierOut:
        async def work() -> SupplierOut:
            controls = _controls(request)
            controls.count("slow")
            created = await service.create(session, person.account_id, body, auto_approve=False)
            await asyncio.sleep(controls.sleep_seconds)
            return created

        return await idempotency.once(work)

    @router.post("/gated-suppliers", status_code=201, operation_id="test-gated-suppliers")
    async def create_gated(
        body: SupplierCreate,
        person: CurrentPerson,
        session: DbSession,
        idempotency: RequiredIdempotency,
        request: Request,
    ) -> SupplierOut:
        async def work() -> SupplierOut:
            controls = _controls(request)
            controls.count("gated")
            created = await service.create(session, person.account_id, body, auto_approve=False)
            controls.entered.set()
            await controls.gate.wait()
            return created

        return await idempotency.once(work)

    return router


def build_app(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> FastAPI:
    """The real app plus the test-only routes above."""
    app = create_app(settings, sessionmaker=sessionmaker)
    app.state.controls = Controls()
    app.include_router(_router())
    return app


@dataclass
class Api:
    client: httpx.AsyncClient
    controls: Controls


@asynccontextmanager
async def api_client(app: FastAPI, **transport: Any) -> AsyncIterator[Api]:
    asgi = httpx.ASGITransport(app=app, client=("198.51.100.20", 50000), **transport)
    async with httpx.AsyncClient(transport=asgi, base_url="http://testserver") as client:
        yield Api(client, app.state.controls)


@dataclass(frozen=True)
class Caller:
    account_id: uuid.UUID
    email: str
    headers: dict[str, str]


async def new_caller(client: httpx.AsyncClient) -> Caller:
    body = await signup(client)
    return Caller(
        account_id=uuid.UUID(body["account"]["id"]),
        email=body["account"]["email"],
        headers=bearer(body["tokens"]["access_token"]),
    )


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


async def post(
    client: httpx.AsyncClient,
    path: str,
    caller: Caller,
    key: str | bytes | None,
    *,
    name: str = "Idempotent Farm",
    content: bytes | None = None,
) -> httpx.Response:
    headers: dict[str, Any] = dict(caller.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    if content is not None:
        headers["Content-Type"] = "application/json"
        return await client.post(path, content=content, headers=headers)
    return await client.post(path, json={"name": name}, headers=headers)


def assert_replay_of(replay: httpx.Response, first: httpx.Response) -> None:
    """`replay` repeats `first`: same status and body, marked as replayed."""
    assert replay.status_code == first.status_code, replay.text
    assert replay.json() == first.json()
    assert replay.headers.get("Idempotent-Replayed") == "true"


async def owned_suppliers(session: AsyncSession, account_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(SupplierMember)
        .where(SupplierMember.account_id == account_id)
    )
    return int(count or 0)


async def stored_keys(session: AsyncSession, principal: str) -> list[IdempotencyKey]:
    rows = await session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.principal == principal)
    )
    return list(rows)


async def owned_via_api(client: httpx.AsyncClient, caller: Caller) -> list[dict[str, Any]]:
    response = await client.get("/v1/suppliers", params={"limit": 100}, headers=caller.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    assert response.json()["next_cursor"] is None
    return items
