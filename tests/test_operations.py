"""Operations: health, readiness, metrics and request ids."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


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
