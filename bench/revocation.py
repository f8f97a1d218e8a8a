"""Benchmark session revocation: what refusing revoked sessions adds to an authenticated request.

Usage: .venv/bin/python bench/revocation.py [--revoked 10000] [--calls 20000] [--requests 2000]
       [--rounds 5]
Seeds `--revoked` revoked sessions (a busy site's quarter hour of logouts) directly with SQL and
starts the app's lifespan, which loads them into the process's revocation set. Then, in
rounds: checks one access token `--calls` times each, in 20 interleaved batches (the order
flipping each batch, CPU time measured), by decoding it alone (`tokens.decode_access_token`, the
check before revocation existed), by the check every authenticated route now runs
(`auth._claims`: decode, then look the session up in the set), and by the lookup alone; then
serves `--requests` authenticated `GET /v1/me` (middleware, routing, dependencies, one query,
serialisation), called as ASGI in-process, so no client or network time dilutes it. Prints each
round's µs per call and per request, the lookup's share of the request, and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from starlette.requests import Request

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import ATTRIBUTION, JWT, server_url

from xiaopu import devdb
from xiaopu.app import XiaopuApp, create_app
from xiaopu.auth.auth import _claims
from xiaopu.auth.tokens import decode_access_token
from xiaopu.config import Environment, Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.migrate import upgrade

DB = "xiaopu_bench_revocation"

SEED = [
    "INSERT INTO accounts (id, email, password_hash, status, created_at, updated_at) "
    "VALUES (gen_random_uuid(), 'gone@example.com', 'x', 'active', now(), now())",
    "INSERT INTO refresh_tokens (id, account_id, family_id, token_hash, expires_at, revoked_at, "
    "created_at) SELECT gen_random_uuid(), (SELECT id FROM accounts), gen_random_uuid(), "
    "sha256(g::text::bytea), now() + interval '30 days', now() - g * interval '50 ms', now() "
    "FROM generate_series(1, :revoked) g",
]


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test,
        database_url=url,
        jwt_secret=JWT,
        attribution_secret=ATTRIBUTION,
        log_level="WARNING",
    )


async def _request(app: XiaopuApp, token: str) -> int:
    """One GET /v1/me through the whole app, as the server would call it."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/me",
        "raw_path": b"/v1/me",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _per_call_us(fn: Any, calls: int) -> float:
    """CPU µs per call (process time: other processes on the machine do not count)."""
    started = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - started) / calls * 1e6


def _alternating_us(fns: list[Any], calls: int, batches: int) -> list[float]:
    """Median µs per call of each fn, run in interleaved batches so drift hits them alike."""
    samples: list[list[float]] = [[] for _ in fns]
    for b in range(batches):
        order = list(range(len(fns)))
        if b % 2:
            order.reverse()
        for i in order:
            samples[i].append(_per_call_us(fns[i], calls // batches))
    return [statistics.median(s) for s in samples]


async def _run(url: str, revoked: int, calls: int, requests: int, rounds: int) -> None:
    settings = _settings(url)
    engine = create_engine(settings)
    async with engine.begin() as conn:
        for statement in SEED:
            await conn.execute(text(statement), {"revoked": revoked})
    app = create_app(settings, sessionmaker=create_sessionmaker(engine))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                response = await client.post(
                    "/v1/auth/signup",
                    json={"email": "bench@example.com", "password": "correct horse battery"},
                )
                token = response.json()["tokens"]["access_token"]
            revocations = app.state.revocations
            assert len(revocations) == revoked, (len(revocations), revoked)
            request = Request({"type": "http", "app": app, "headers": []})
            assert await _request(app, token) == 200
            print(f"revoked sessions in the set: {len(revocations):,}")
            session_id = decode_access_token(settings, token).session_id
            print("round  decode µs  decode+check µs  lookup µs  GET /v1/me µs  lookup/request")
            rows: list[tuple[float, float, float, float]] = []
            for r in range(rounds):
                decode, checked, lookup = _alternating_us(
                    [
                        lambda: decode_access_token(settings, token),
                        lambda: _claims(request, token, settings),
                        lambda: session_id in revocations,
                    ],
                    calls,
                    batches=20,
                )
                started = time.perf_counter()
                for _ in range(requests):
                    if await _request(app, token) != 200:
                        raise RuntimeError("GET /v1/me did not answer 200")
                per_request = (time.perf_counter() - started) / requests * 1e6
                rows.append((decode, checked, lookup, per_request))
                print(
                    f"{r + 1:>5}  {decode:9.2f}  {checked:15.2f}  {lookup:9.3f}"
                    f"  {per_request:13.1f}  {lookup / per_request:14.4%}"
                )
            decode, checked, lookup, per_request = (
                statistics.median(column) for column in zip(*rows, strict=True)
            )
            print(
                f"median: decode {decode:.2f} µs, decode+check {checked:.2f} µs "
                f"(+{checked - decode:.2f} µs, {(checked - decode) / decode:+.1%}), "
                f"revocation lookup {lookup:.3f} µs, GET /v1/me {per_request:.0f} µs: "
                f"the lookup is {lookup / per_request:.4%} of the request"
            )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revoked", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    try:
        asyncio.run(_run(url, args.revoked, args.calls, args.requests, args.rounds))
    finally:
        if not os.environ.get("XIAOPU_BENCH_KEEP"):
            asyncio.run(devdb.drop_database(server, DB))


if __name__ == "__main__":
    main()
