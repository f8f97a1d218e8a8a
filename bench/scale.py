"""Benchmark reads at platform scale: every list, read and dashboard endpoint, big and small tenant.

Usage: .venv/bin/python bench/scale.py [--scale 0.01] [--drop] [--seconds 10] [--clients 8]
    [--only <endpoint substring>] [--build-only]
Builds (once; kept between runs, --drop rebuilds) a database `xiaopu_scale_<scale>` migrated
with the project's migrations and filled with set-based SQL only (bench/scale_build.py):
--scale 0.1 is 300k shops, 10k suppliers, 1M products, 10M clicks over three months, 1M orders
with 1.2M supplier orders, 6.6M commission lines, ~7M ledger entries; shop 1 holds 5% of orders
and clicks, supplier 1 10% of supplier orders. Then serves the app (one `xiaopu serve` worker),
mints access tokens for the big and a small shop's owner, the big and a small supplier's owner
and an operator, and drives each GET operation the app serves (its OpenAPI document, as
`make openapi` commits it; mapped to a concrete path per tenant) with --clients concurrent
clients for --seconds each, printing
`p95_ms=<n> p50_ms=<n> p99_ms=<n> rows=<n> endpoint=<name> tenant=<big|small>` per endpoint and
tenant; then a small shop's redirect and page measured while the big supplier's statement is
produced over and over (`... while statements`); then
`worst p95_ms=<n> endpoint=<name>; rss_mb=<peak worker RSS>` (sampled every 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import ATTRIBUTION, JWT, free_port, need, serve, server_url, wait_ready
from bench.scale_build import (
    BIG_SHOP,
    BIG_SUPPLIER,
    K_ACCOUNT,
    K_CAMPAIGN,
    K_LINK,
    K_PART,
    K_PRODUCT,
    K_SHOP,
    K_SUPPLIER,
    ZONE,
    Volumes,
    build,
    compute_matching,
    database_name,
    has_matching,
    is_complete,
    link_code,
    product_of_order,
    roll_up,
    supplier_of_product,
    xid,
)

from xiaopu import devdb
from xiaopu.auth.passwords import hash_password
from xiaopu.auth.tokens import issue_access_token
from xiaopu.config import Environment, Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.ledger import service as ledger
from xiaopu.migrate import upgrade

RECONCILE_UP_TO = 0.01  # above it, the reconcile job's full scan is left to the job
PASSWORD = "scale-bench-password"  # every generated account's, for trying the API by hand
# GET operations not measured, and why. Every other one gets a line per tenant.
SKIPPED = {
    "/healthz": "liveness probe: no tenant data",
    "/readyz": "readiness probe: no tenant data",
    "/metrics": "Prometheus exposition: no tenant data",
    "/v1/links/{code}/qr.{kind}": "renders a QR image: CPU per request, the same for every tenant",
    "/v1/orders/{order_id}": "a buyer's own order, read with its order token: one row by key",
    "/v1/orders/{order_id}/returns": "a buyer's own order's returns: none generated",
    "/v1/suppliers/{supplier_id}/settlements/{settlement_id}": "no settlements generated",
    "/v1/suppliers/{supplier_id}/statements/exports/{export_id}": (
        "an export is asked for (POST) and built by the worker first; one row by key"
    ),
    "/v1/suppliers/{supplier_id}/statements/exports/{export_id}/download": (
        "streams a built export's chunks; the redirect beside a 20,000-line export is "
        "tests/commissions/test_export_beside_redirects.py"
    ),
    "/v1/suppliers/{supplier_id}/webhook-endpoints/{endpoint_id}": "no endpoints generated",
    "/v1/suppliers/{supplier_id}/webhook-endpoints/{endpoint_id}/attempts": "no endpoints",
    "/v1/suppliers/{supplier_id}/webhook-endpoints/{endpoint_id}/deliveries": "no endpoints",
}


@dataclass(frozen=True)
class Tenant:
    name: str  # big | small
    shop: int
    supplier: int
    shop_owner: int  # account numbers
    supplier_owner: int
    campaign: int  # the supplier's live campaign, which the shop signed up to


@dataclass(frozen=True)
class Target:
    endpoint: str  # the name printed: the OpenAPI path plus any query that matters
    tenant: str
    path: str
    principal: str  # shop | supplier | operator | public
    # Where a response is one object, the rows behind it (one $1 parameter), printed as rows=.
    count_sql: str | None = None
    count_arg: str | None = None


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test, database_url=url, jwt_secret=JWT, attribution_secret=ATTRIBUTION
    )


def _spec() -> dict[str, Any]:
    """The app's OpenAPI document (what `make openapi` commits): every GET it serves."""
    from xiaopu.app import create_app

    schema: dict[str, Any] = create_app(_settings("postgresql://unused/unused")).openapi()
    return schema


def _targets(v: Volumes, tenants: list[Tenant], statement_days: int) -> list[Target]:
    """Each GET operation of the API, as a concrete request per tenant."""
    gets = [path for path, ops in _spec()["paths"].items() if "get" in ops]
    out: list[Target] = []
    for t in tenants:
        sup = xid(K_SUPPLIER, t.supplier)
        link = xid(K_LINK, t.shop)
        # A supplier order of this supplier: part 2*o for an order o whose product is theirs.
        part = xid(K_PART, _a_part_of(v, t.supplier))
        product = xid(K_PRODUCT, _a_product_of(v, t.supplier))
        campaign = xid(K_CAMPAIGN, t.campaign)
        campaigns = f"/v1/suppliers/{sup}/campaigns"
        concrete: dict[str, list[tuple[str, str, str]]] = {
            "/v1/catalogue/categories": [("", "/v1/catalogue/categories", "shop")],
            "/v1/catalogue/products": [
                ("", "/v1/catalogue/products", "shop"),
                ("?sort=commission", "/v1/catalogue/products?sort=commission", "shop"),
                ("?q=普洱", "/v1/catalogue/products?q=普洱", "shop"),
            ],
            "/v1/me": [("", "/v1/me", "shop")],
            "/v1/operator/audit": [("", "/v1/operator/audit", "operator")],
            "/v1/operator/commissions/held": [("", "/v1/operator/commissions/held", "operator")],
            "/v1/operator/refunds": [("", "/v1/operator/refunds", "operator")],
            "/v1/operator/returns": [("", "/v1/operator/returns", "operator")],
            "/v1/operator/suppliers": [("", "/v1/operator/suppliers", "operator")],
            "/v1/operator/dashboard": [("", "/v1/operator/dashboard", "operator")],
            "/v1/shops/mine/dashboard": [("", "/v1/shops/mine/dashboard", "shop")],
            "/v1/shops/mine/dashboard/links": [("", "/v1/shops/mine/dashboard/links", "shop")],
            "/v1/shops/mine/dashboard/products": [
                ("", "/v1/shops/mine/dashboard/products", "shop")
            ],
            "/v1/suppliers/{supplier_id}/dashboard": [
                ("", f"/v1/suppliers/{sup}/dashboard", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/dashboard/products": [
                ("", f"/v1/suppliers/{sup}/dashboard/products", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/dashboard/products/{product_id}/shops": [
                ("", f"/v1/suppliers/{sup}/dashboard/products/{product}/shops", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/dashboard/stock": [
                ("", f"/v1/suppliers/{sup}/dashboard/stock", "supplier")
            ],
            "/v1/orders": [("", "/v1/orders", "shop")],
            "/v1/shops/mine": [("", "/v1/shops/mine", "shop")],
            "/v1/shops/mine/commissions": [("", "/v1/shops/mine/commissions", "shop")],
            "/v1/shops/mine/links": [("", "/v1/shops/mine/links", "shop")],
            "/v1/shops/mine/links/{link_id}/kit": [
                ("", f"/v1/shops/mine/links/{link}/kit", "shop")
            ],
            "/v1/shops/mine/links/{link_id}/stats": [
                ("?days=90", f"/v1/shops/mine/links/{link}/stats?days=90", "shop")
            ],
            "/v1/shops/mine/orders": [("", "/v1/shops/mine/orders", "shop")],
            "/v1/shops/mine/products": [("", "/v1/shops/mine/products", "shop")],
            "/v1/shops/mine/recommendations": [("", "/v1/shops/mine/recommendations", "shop")],
            "/v1/shops/mine/invitations": [("", "/v1/shops/mine/invitations", "shop")],
            "/v1/shops/mine/wallet": [("", "/v1/shops/mine/wallet", "shop")],
            "/v1/shops/mine/withdrawals": [("", "/v1/shops/mine/withdrawals", "shop")],
            "/v1/shops/{slug}": [("", f"/v1/shops/shop-{t.shop}", "public")],
            "/v1/shops/{slug}/products": [("", f"/v1/shops/shop-{t.shop}/products", "public")],
            "/v1/suppliers": [("", "/v1/suppliers", "supplier")],
            "/v1/suppliers/{supplier_id}": [("", f"/v1/suppliers/{sup}", "supplier")],
            "/v1/suppliers/{supplier_id}/api-keys": [
                ("", f"/v1/suppliers/{sup}/api-keys", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/balance": [
                ("", f"/v1/suppliers/{sup}/balance", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/events": [("", f"/v1/suppliers/{sup}/events", "supplier")],
            "/v1/suppliers/{supplier_id}/members": [
                ("", f"/v1/suppliers/{sup}/members", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/orders": [("", f"/v1/suppliers/{sup}/orders", "supplier")],
            "/v1/suppliers/{supplier_id}/orders/{supplier_order_id}": [
                ("", f"/v1/suppliers/{sup}/orders/{part}", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/products": [
                ("", f"/v1/suppliers/{sup}/products", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/products/{product_id}": [
                ("", f"/v1/suppliers/{sup}/products/{product}", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/products/{product_id}/recommended-shops": [
                ("", f"/v1/suppliers/{sup}/products/{product}/recommended-shops", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/returns": [
                ("", f"/v1/suppliers/{sup}/returns", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/settlements": [
                ("", f"/v1/suppliers/{sup}/settlements", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/statements": [
                (
                    f" {statement_days} days",
                    f"/v1/suppliers/{sup}/statements?since={{since}}&until={{until}}",
                    "supplier",
                )
            ],
            "/v1/suppliers/{supplier_id}/webhook-endpoints": [
                ("", f"/v1/suppliers/{sup}/webhook-endpoints", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/campaigns": [("", campaigns, "supplier")],
            "/v1/suppliers/{supplier_id}/campaigns/{campaign_id}": [
                ("", f"{campaigns}/{campaign}", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/campaigns/{campaign_id}/leaderboard": [
                ("", f"{campaigns}/{campaign}/leaderboard", "supplier")
            ],
            "/v1/suppliers/{supplier_id}/campaigns/{campaign_id}/results": [
                ("", f"{campaigns}/{campaign}/results", "supplier")
            ],
            "/v1/shops/mine/campaigns": [("", "/v1/shops/mine/campaigns", "shop")],
            "/v1/shops/mine/campaigns/{campaign_id}": [
                ("", f"/v1/shops/mine/campaigns/{campaign}", "shop")
            ],
            "/v1/shops/mine/campaigns/{campaign_id}/leaderboard": [
                ("", f"/v1/shops/mine/campaigns/{campaign}/leaderboard", "shop")
            ],
        }
        for path in gets:
            if path in SKIPPED:
                continue
            if path not in concrete:
                # A GET added by a later issue: it must get a mapping above (or a reason in
                # SKIPPED) so that every read keeps a line.
                print(f"unmapped GET {path}: add it to bench/scale.py", file=sys.stderr)
                continue
            for suffix, concrete_path, principal in concrete[path]:
                count = _COUNTS.get(path, (None, None))
                arg = {"shop": xid(K_SHOP, t.shop), "supplier": sup, "campaign": campaign}.get(
                    count[1] or ""
                )
                out.append(Target(path + suffix, t.name, concrete_path, principal, count[0], arg))
        out.append(
            Target(
                "/s/{code}",
                t.name,
                f"/s/{link_code(t.shop)}",
                "public",
                "SELECT count(*) FROM clicks c JOIN share_links l ON l.id = c.link_id "
                "WHERE l.code = $1",
                link_code(t.shop),
            )
        )
    return out


# Reads that answer one object from many rows: the rows, counted in the database.
_ENTRIES_OF = (
    "SELECT count(*) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
    "WHERE a.owner_id = $1::uuid"
)
_SHARDS_OF = (
    "SELECT (SELECT count(*) FROM campaign_unit_shards WHERE campaign_id = $1::uuid) "
    "+ (SELECT count(*) FROM campaign_budget_shards WHERE campaign_id = $1::uuid)"
)
_COUNTS: dict[str, tuple[str, str]] = {
    "/v1/shops/mine/wallet": (_ENTRIES_OF, "shop"),
    "/v1/suppliers/{supplier_id}/balance": (_ENTRIES_OF, "supplier"),
    "/v1/shops/mine/links/{link_id}/stats": (
        "SELECT count(*) FROM clicks WHERE shop_id = $1::uuid AND link_id = (SELECT id FROM "
        "share_links WHERE shop_id = $1::uuid ORDER BY code LIMIT 1)",
        "shop",
    ),
    # A campaign's units and budget left are sums over its shards.
    "/v1/suppliers/{supplier_id}/campaigns/{campaign_id}": (_SHARDS_OF, "campaign"),
    "/v1/shops/mine/campaigns/{campaign_id}": (_SHARDS_OF, "campaign"),
    # Results sum the clock's rollup rows of the campaign by shop and by product.
    "/v1/suppliers/{supplier_id}/campaigns/{campaign_id}/results": (
        "SELECT count(*) FROM campaign_results WHERE campaign_id = $1::uuid",
        "campaign",
    ),
}


def _a_part_of(v: Volumes, supplier: int) -> int:
    """The number of a supplier order (first part of order o) whose product is the supplier's."""
    for o in range(1, v.orders + 1):
        if supplier_of_product(v, product_of_order(v, o)) == supplier:
            return 2 * o
    raise RuntimeError(f"supplier {supplier} has no orders")


def _a_product_of(v: Volumes, supplier: int) -> int:
    for p in range(1, v.products + 1):
        if supplier_of_product(v, p) == supplier and p % 25 not in (1, 2):  # drafts, archived
            return p
    raise RuntimeError(f"supplier {supplier} has no products")


def _rows(response: httpx.Response) -> int:
    """Items in the response: its list, or its CSV's lines; a redirect or an object counts 1."""
    if response.status_code in (301, 302, 303, 307, 308):
        return 1
    kind = response.headers.get("content-type", "")
    if "csv" in kind:
        return max(0, response.text.count("\n") - 1)
    if "json" not in kind:
        return 1
    body = response.json()
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict):
        for key in ("items", "lines", "data", "days"):
            if isinstance(body.get(key), list):
                return len(body[key])
    return 1


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wrk(port: int, path: str, headers: dict[str, str], seconds: float, clients: int) -> Load:
    """Drive one path with wrk (C, so the client takes little of the shared CPU) for `seconds`
    with `clients` connections; latencies in ms."""
    args = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "120s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*args, "-s", str(ROOT / "bench" / "scale.lua"), f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in out.splitlines() if row.startswith("SCALE "))
    p50, p95, p99, requests, errors = (int(x) for x in line.split()[1:])
    return Load(p50 / 1000, p95 / 1000, p99 / 1000, requests, errors)


@dataclass(frozen=True)
class Load:
    p50: float
    p95: float
    p99: float
    requests: int
    errors: int


async def _rounds(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], seconds: float, clients: int
) -> Load:
    """Rounds of `clients` concurrent requests, each waited for, until `seconds` have passed
    (at least one round)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def one() -> None:
        nonlocal errors
        started = time.perf_counter()
        response = await client.get(path, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        errors += response.status_code >= 400

    while True:
        await asyncio.gather(*(one() for _ in range(clients)))
        if time.monotonic() >= deadline:
            break
    p50, p95, p99 = (_percentile(latencies, q) for q in (0.5, 0.95, 0.99))
    return Load(p50, p95, p99, len(latencies), errors)


class RssSampler:
    """Peak RSS of the server process and its children, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        total = 0
        for p in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        self.peak = max(self.peak, total)

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def _measure(
    port: int, pid: int, settings: Settings, v: Volumes, args: argparse.Namespace
) -> None:
    small_shop, small_supplier = v.small_shop, v.small_supplier
    tenants = [
        Tenant("big", BIG_SHOP, BIG_SUPPLIER, BIG_SHOP, v.shops + BIG_SUPPLIER, 1),
        Tenant("small", small_shop, small_supplier, small_shop, v.shops + small_supplier, 2),
    ]

    def bearer(account: int) -> dict[str, str]:
        token, _ = issue_access_token(settings, uuid.UUID(xid(K_ACCOUNT, account)), uuid.uuid4())
        return {"Authorization": f"Bearer {token}"}

    operator = bearer(v.operator)
    until = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
    since = time.strftime(
        "%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - args.statement_days * 86400)
    )
    results: list[tuple[float, str]] = []
    sampler = RssSampler(pid)
    sampler.start()
    assert settings.database_url is not None
    db = await asyncpg.connect(settings.database_url)
    print(f"\nskipped: {'; '.join(f'{k} ({why})' for k, why in SKIPPED.items())}\n")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
        for target in _targets(v, tenants, args.statement_days):
            if args.only and args.only not in target.endpoint:
                continue
            tenant = next(t for t in tenants if t.name == target.tenant)
            headers = {
                "shop": bearer(tenant.shop_owner),
                "supplier": bearer(tenant.supplier_owner),
                "operator": operator,
                "public": {},
            }[target.principal]
            path = quote(target.path.format(since=since, until=until), safe="/?&=%:")
            first = await client.get(path, headers=headers)
            if first.status_code >= 400:
                print(f"  {first.status_code} {path}: {first.text[:300]}", file=sys.stderr)
            rows = _rows(first) if first.status_code < 400 else -1
            if target.count_sql is not None:
                rows = int(await db.fetchval(target.count_sql, target.count_arg))
            load = await asyncio.to_thread(_wrk, port, path, headers, args.seconds, args.clients)
            if load.requests < 2 * args.clients:
                # Slower than the run's length: wrk drops what is in flight when its clock
                # stops, so rounds of `clients` concurrent requests are timed to the end.
                load = await _rounds(client, path, headers, args.seconds, args.clients)
            note = f" errors={load.errors}/{load.requests}" if load.errors else ""
            print(
                f"p95_ms={load.p95:.0f} p50_ms={load.p50:.0f} p99_ms={load.p99:.0f} "
                f"rows={rows} endpoint={target.endpoint} tenant={target.tenant}{note}",
                flush=True,
            )
            results.append((load.p95, target.endpoint))
        results += await _while_statements(client, port, tenants, bearer, since, until, args)
    await sampler.stop()
    await db.close()
    if results:
        worst = max(results)
        print(f"worst p95_ms={worst[0]:.0f} endpoint={worst[1]}; rss_mb={sampler.peak / 2**20:.0f}")


HEAVY_CLIENTS = 2  # big statements produced at once while others' reads are measured


async def _repeat(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    done: asyncio.Event,
    latencies: list[float],
) -> None:
    while not done.is_set():
        started = time.perf_counter()
        await client.get(quote(path, safe="/?&=%:"), headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)


async def _while_statements(
    client: httpx.AsyncClient,
    port: int,
    tenants: list[Tenant],
    bearer: Callable[[int], dict[str, str]],
    since: str,
    until: str,
    args: argparse.Namespace,
) -> list[tuple[float, str]]:
    """A small tenant's redirect and page, measured while the big supplier's statement is being
    produced over and over: what one tenant's large read costs everyone else on the worker."""
    big, small = tenants
    heavy_path = (
        f"/v1/suppliers/{xid(K_SUPPLIER, big.supplier)}/statements?since={since}&until={until}"
    )
    heavy_headers = bearer(big.supplier_owner)
    measured = [
        ("/s/{code} while statements", f"/s/{link_code(small.shop)}", {}),
        ("/v1/shops/mine/links while statements", "/v1/shops/mine/links", bearer(small.shop_owner)),
    ]
    results = []
    for name, path, headers in measured:
        if args.only and args.only not in name:
            continue
        rows = _rows(await client.get(path, headers=headers))
        done = asyncio.Event()
        produced: list[float] = []
        tasks = [
            asyncio.create_task(_repeat(client, heavy_path, heavy_headers, done, produced))
            for _ in range(HEAVY_CLIENTS)
        ]
        await asyncio.sleep(0.5)  # the statements are under way
        load = await asyncio.to_thread(_wrk, port, path, headers, args.seconds, args.clients)
        if load.requests < 2 * args.clients:  # stalled past the run: time rounds to the end
            load = await _rounds(client, path, headers, args.seconds, args.clients)
        done.set()
        await asyncio.gather(*tasks)
        print(
            f"p95_ms={load.p95:.0f} p50_ms={load.p50:.0f} p99_ms={load.p99:.0f} "
            f"rows={rows} endpoint={name} tenant=small requests={load.requests} "
            f"statements_meanwhile={len(produced)} "
            f"slowest_statement_ms={max(produced, default=0):.0f}",
            flush=True,
        )
        results.append((load.p95, name))
    return results


async def _ensure_database(server: str, v: Volumes, drop: bool) -> str:
    name = database_name(v.scale)
    url = devdb.with_database(server, name)
    if not drop:
        try:
            conn = await asyncpg.connect(url)
        except asyncpg.InvalidCatalogNameError:
            conn = None
        if conn is not None:
            try:
                if await is_complete(conn, v.scale):
                    print(f"database {name} is built (scale {v.scale:g}); --drop rebuilds it")
                    matched = await has_matching(conn)
                    if matched is None:
                        print("built before the matching tables: --drop rebuilds it")
                    elif not matched:  # built before the job ran on it
                        await _matching(url)
                    return url
            finally:
                await conn.close()
    await devdb.create_database(server, name, replace=True)
    await asyncio.to_thread(upgrade, url, quiet=True)
    print(f"building {name}: {v}")
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        await build(conn, v, hash_password(PASSWORD))
    finally:
        await conn.close()
    print(f"built {name} in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    engine = create_engine(_settings(url).model_copy(update={"db_statement_timeout_ms": 0}))
    try:
        taken = await roll_up(create_sessionmaker(engine))
    finally:
        await engine.dispose()
    print(f"rolled up {taken} orders for the dashboards in {time.perf_counter() - started:.1f} s")
    # As autovacuum would soon after: a first read of a bulk-loaded table sets every row's
    # hint bits (writing as it reads), which is the load's cost, not the reads'.
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    if v.scale <= RECONCILE_UP_TO:
        settings = _settings(url).model_copy(update={"db_statement_timeout_ms": 0})
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                problems = await ledger.reconcile(session)
        finally:
            await engine.dispose()
        print(f"ledger reconciled (the reconcile job's check): {problems} problems")
        if problems:
            sys.exit("the built ledger does not reconcile")
    await _matching(url)
    return url


async def _matching(url: str) -> None:
    started = time.perf_counter()
    result = await compute_matching(_settings(url))
    print(
        f"matching.compute in {time.perf_counter() - started:.1f} s: {result.shops} shops, "
        f"{result.recommendations} recommendations, {result.recommended_shops} recommended shops"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--drop", action="store_true", help="rebuild the database")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--only", help="measure only endpoints whose name contains this")
    parser.add_argument("--statement-days", type=int, default=30)
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    v = Volumes.at(args.scale)
    if not args.build_only:
        need("wrk", "wrk")
    server = server_url()
    url = asyncio.run(_ensure_database(server, v, args.drop))
    if args.build_only:
        return
    settings = _settings(url)
    port = free_port()
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": url,
        "XIAOPU_JWT_SECRET": JWT,
        "XIAOPU_ATTRIBUTION_SECRET": ATTRIBUTION,
        "XIAOPU_LOG_LEVEL": "WARNING",
    }
    python = str(Path(sys.executable))
    started = asyncio.run(_now(url))
    server_process = serve([python, "-m", "xiaopu.cli", "serve", "--port", str(port)], env)
    try:
        wait_ready(port, "/healthz")
        asyncio.run(_measure(port, server_process.pid, settings, v, args))
    finally:
        server_process.terminate()  # graceful: the click recorder flushes what it holds
        server_process.wait(timeout=60)
        asyncio.run(_forget_clicks(url, started))


async def _now(url: str) -> datetime:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT now()")  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def _forget_clicks(url: str, since: datetime) -> None:
    """Take back the clicks this run's redirects recorded, and their links' and shops' daily
    counts (local days, as the app keeps them), so that the kept database measures the same
    from run to run."""
    local = f"(created_at AT TIME ZONE '{ZONE}')::date"
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            links = await conn.fetch(
                "WITH gone AS (DELETE FROM clicks WHERE created_at >= $1 RETURNING link_id) "
                "SELECT DISTINCT link_id FROM gone",
                since,
            )
            ids = [r["link_id"] for r in links]
            day = since.astimezone(ZoneInfo(ZONE)).date()
            for table in ("link_daily_visitors", "link_daily_stats"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE link_id = ANY($1) AND day >= $2",
                    ids,
                    day,
                )
            await conn.execute(
                "INSERT INTO link_daily_visitors (link_id, day, visitor_id) "
                f"SELECT DISTINCT link_id, {local}, visitor_id "
                f"FROM clicks WHERE link_id = ANY($1) AND {local} >= $2",
                ids,
                day,
            )
            await conn.execute(
                "INSERT INTO link_daily_stats (link_id, day, shop_id, product_id, clicks, "
                "unique_visitors) "
                "SELECT c.link_id, c.day, l.shop_id, l.product_id, c.n, c.v FROM ("
                f"SELECT link_id, {local} AS day, count(*) AS n, count(DISTINCT visitor_id) AS v "
                f"FROM clicks WHERE link_id = ANY($1) AND {local} >= $2 GROUP BY 1, 2) c "
                "JOIN share_links l ON l.id = c.link_id",
                ids,
                day,
            )
            await conn.execute(
                "DELETE FROM shop_daily_traffic WHERE day >= $2 AND shop_id IN "
                "(SELECT shop_id FROM share_links WHERE id = ANY($1))",
                ids,
                day,
            )
            await conn.execute(
                "INSERT INTO shop_daily_traffic (shop_id, day, clicks, unique_visitors) "
                "SELECT shop_id, day, sum(clicks), sum(unique_visitors) FROM link_daily_stats "
                "WHERE day >= $2 AND shop_id IN (SELECT shop_id FROM share_links "
                "WHERE id = ANY($1)) GROUP BY shop_id, day",
                ids,
                day,
            )
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
