"""The metrics port: /metrics, /healthz that follows the process's health, nothing else."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CollectorRegistry, Counter

from xiaopu.kit.metrics_http import MetricsServer


async def test_it_serves_its_registry_and_health_and_nothing_else() -> None:
    registry = CollectorRegistry()
    Counter("probe_total", "A counter of this test's own.", registry=registry).inc(3)
    up = True
    server = MetricsServer(registry=registry, healthy=lambda: up)
    port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            metrics = await http.get("/metrics")
            healthy = await http.get("/healthz")
            up = False
            down = await http.get("/healthz")
            elsewhere = await http.get("/")
            posted = await http.post("/metrics")
    finally:
        await server.stop()
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "probe_total 3.0" in metrics.text
    assert (healthy.status_code, healthy.json()) == (200, {"status": "ok"})
    assert (down.status_code, down.json()) == (503, {"status": "down"})
    assert elsewhere.status_code == 404
    assert posted.status_code == 405


async def test_a_client_that_sends_nothing_is_cut_off_without_harm() -> None:
    server = MetricsServer()
    port = await server.start("127.0.0.1", 0)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n" + b"X-Junk: " + b"a" * 10_000)
        await writer.drain()
        writer.close()
        async with httpx.AsyncClient() as http:
            after = await http.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await server.stop()
    assert after.status_code == 200
