"""Operations: health, readiness, metrics and request ids."""

from __future__ import annotations

import socket

import httpx
import pytest
import structlog.contextvars
import structlog.testing
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.app import XiaopuApp, create_app
from xiaopu.config import Environment, Settings
from xiaopu.observability import configure_logging


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "database": True, "migrations": "at_head"}


async def test_readyz_when_migrations_behind(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await session.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    await session.commit()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["migrations"] == "behind"


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    refused = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert refused.headers["x-request-id"] != "bad id\twith junk"


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'xiaopu_http_requests_total{method="GET",route="/healthz",status="200"}' in response.text


async def test_access_log_carries_the_request_id(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_app(settings.model_copy(update={"log_level": "INFO"}), sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            merge = structlog.contextvars.merge_contextvars
            with structlog.testing.capture_logs(processors=[merge]) as logs:
                response = await client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    finally:
        configure_logging(settings.log_level)
    assert response.headers["x-request-id"] == "trace-42"
    access = [entry for entry in logs if entry["event"] == "request"]
    assert access, logs
    assert access[-1]["request_id"] == "trace-42"
    assert access[-1]["status"] == 200
    assert access[-1]["route"] == "/healthz"


METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"


async def _client_for(app: XiaopuApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_metrics_need_the_token_when_one_is_set(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_app(
        settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)}),
        sessionmaker=sessionmaker,
    )
    async with await _client_for(app) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["code"] == "invalid_metrics_token"
        assert "xiaopu_" not in refused.text
    assert right.status_code == 200
    assert 'xiaopu_http_requests_total{method="GET",route="/metrics",status="401"}' in right.text


async def test_metrics_are_off_in_production_without_a_token(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    production = settings.model_copy(update={"env": Environment.production})
    async with await _client_for(create_app(production, sessionmaker=sessionmaker)) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
    assert "xiaopu_" not in response.text


def test_a_metrics_token_must_be_long() -> None:
    with pytest.raises(ValidationError, match="XIAOPU_METRICS_TOKEN must be at least 32"):
        Settings(env=Environment.development, metrics_token="")


async def test_each_process_serves_its_metrics_on_the_first_free_port_from_the_setting(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    with socket.socket() as taken:
        # A port someone holds: the app takes the next one, as a second `serve` process would.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(
            settings.model_copy(update={"metrics_port": port, "host": "127.0.0.1"}),
            sessionmaker=sessionmaker,
        )
        async with app.router.lifespan_context(app), httpx.AsyncClient() as http:
            metrics = await http.get(f"http://127.0.0.1:{port + 1}/metrics")
            health = await http.get(f"http://127.0.0.1:{port + 1}/healthz")
        assert metrics.status_code == 200
        assert "# TYPE xiaopu_http_requests_total counter" in metrics.text
        assert health.json() == {"status": "ok"}
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as http:
                await http.get(f"http://127.0.0.1:{port + 1}/metrics")
