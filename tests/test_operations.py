"""Operations: health, readiness, metrics and request ids."""

from __future__ import annotations

import httpx
import structlog.contextvars
import structlog.testing
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.app import create_app
from xiaopu.config import Settings
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
