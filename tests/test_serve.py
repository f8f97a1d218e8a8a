"""`xiaopu serve` as deployed: N worker processes on one port, each with its metrics port, and
forwarded headers believed only from the configured proxies."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import TEST_ATTRIBUTION_SECRET, TEST_JWT_SECRET


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _serving(database_url: str, *args: str, **settings: str) -> Iterator[None]:
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": database_url,
        "XIAOPU_JWT_SECRET": TEST_JWT_SECRET,
        "XIAOPU_ATTRIBUTION_SECRET": TEST_ATTRIBUTION_SECRET,
        "XIAOPU_LOG_LEVEL": "WARNING",
        **{f"XIAOPU_{name.upper()}": value for name, value in settings.items()},
    }
    server = subprocess.Popen(  # noqa: S603 - our own CLI, with this test's arguments
        [sys.executable, "-m", "xiaopu.cli", "serve", *args],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        server.send_signal(signal.SIGTERM)
        # A single uvicorn process shuts down gracefully, then re-raises the signal it caught.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)


async def _answer(url: str) -> httpx.Response:
    """GET url once something listens there (a started process takes a few seconds)."""
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                return await http.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing answers {url}")


async def _ready(url: str) -> None:
    for _ in range(100):
        if (await _answer(f"{url}/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


@pytest.mark.concurrent
async def test_serve_runs_n_processes_each_with_a_metrics_port_and_trusts_its_proxy(
    fresh_db_url: str,
) -> None:
    port, metrics_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{port}"
    with _serving(
        fresh_db_url,
        "--workers",
        "2",
        "--port",
        str(port),
        metrics_port=str(metrics_port),
        forwarded_allow_ips="127.0.0.1",
    ):
        await _ready(url)
        async with httpx.AsyncClient() as http:
            # Two processes, each on a metrics port of its own.
            for metrics in (metrics_port, metrics_port + 1):
                health = await _answer(f"http://127.0.0.1:{metrics}/healthz")
                assert health.status_code == 200, metrics
            # We are the trusted proxy: the scheme it forwards is the one the app sees (here in
            # the Location of the trailing-slash redirect).
            redirect = await http.get(f"{url}/healthz/", headers={"X-Forwarded-Proto": "https"})
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"https://127.0.0.1:{port}/healthz"


@pytest.mark.concurrent
async def test_forwarded_headers_from_anyone_else_are_ignored(fresh_db_url: str) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with _serving(fresh_db_url, "--port", str(port), forwarded_allow_ips="192.0.2.1"):
        await _ready(url)
        async with httpx.AsyncClient() as http:
            redirect = await http.get(f"{url}/healthz/", headers={"X-Forwarded-Proto": "https"})
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"http://127.0.0.1:{port}/healthz"
