"""Bad input always gets a problem+json 4xx; a crash gets a 500 that leaks nothing."""

from __future__ import annotations

import functools

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.app import create_app
from xiaopu.config import Settings

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["code"] == code
    assert body["status"] == status
    return body


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login",
        content=b'{"login": "a@b.c", ',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "invalid_json")


async def test_unknown_field_is_422_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login", json={"login": "a@example.com", "password": "x", "is_admin": True}
    )
    body = assert_problem(response, 422, "validation_error")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert any(e["loc"] == ["body", "is_admin"] and e["type"] == "extra_forbidden" for e in errors)


async def test_wrong_json_type_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/login", json=["not", "an", "object"])
    assert_problem(response, 422, "validation_error")


async def test_oversized_body_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    big = b'{"login": "' + b"a" * settings.max_body_bytes + b'", "password": "x"}'
    response = await client.post(
        "/v1/auth/login", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"login": "'
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"a" * 65536
        yield b'", "password": "x"}'

    response = await client.post(
        "/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_unknown_route_is_problem_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404, "not_found")


async def test_wrong_method_is_problem_405(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/v1/auth/login"), 405, "method_not_allowed")


async def test_bad_uuid_in_path_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/suppliers/not-a-uuid", headers={"Authorization": "Bearer x"})
    assert_problem(response, 422, "validation_error")


async def _raise(error: Exception) -> None:
    raise error


@pytest.fixture
async def raising_client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> httpx.AsyncClient:
    """The app with routes that raise what a crash or a lost database connection raises."""
    app = create_app(settings, sessionmaker=sessionmaker)
    errors: dict[str, Exception] = {
        "/boom": RuntimeError("secret internals: password=hunter2"),
        "/raw-closed": asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        "/invalidated": DBAPIError(
            "SELECT 1", None, ConnectionResetError(), connection_invalidated=True
        ),
    }
    for path, error in errors.items():
        app.add_api_route(path, functools.partial(_raise, error), operation_id=f"test-{path[1:]}")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_crash_is_500_without_internals(raising_client: httpx.AsyncClient) -> None:
    async with raising_client as client:
        response = await client.get("/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert body["detail"] == "Something went wrong on our side."


@pytest.mark.parametrize("path", ["/raw-closed", "/invalidated"])
async def test_a_lost_database_connection_is_503(
    raising_client: httpx.AsyncClient, path: str
) -> None:
    async with raising_client as client:
        response = await client.get(path)
    assert_problem(response, 503, "service_busy")
