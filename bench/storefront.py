"""Benchmark the storefront's product and shop pages against a raw ASGI app serving the same
HTML on this machine, in alternating rounds (median ratio).

Usage: .venv/bin/python bench/storefront.py [--seconds 10] [--connections 32] [--rounds 3]
Needs wrk (Debian package; installed here if missing and possible) and a PostgreSQL: the one in
XIAOPU_BENCH_DATABASE_URL, else 127.0.0.1:5432, else an embedded one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (
    ATTRIBUTION,
    JWT,
    cpu_seconds,
    free_port,
    need,
    serve,
    server_url,
    wait_ready,
    wrk,
)

from xiaopu import devdb
from xiaopu.catalogue import service as catalogue
from xiaopu.catalogue.schemas import BulkUpsert
from xiaopu.config import Environment, Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.migrate import upgrade
from xiaopu.models import Account, Supplier, SupplierStatus
from xiaopu.shops import service as shops
from xiaopu.shops.schemas import SelectionAdd, ShopCreate

DB = "xiaopu_bench_storefront"
PRODUCTS = 20


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test, database_url=url, jwt_secret=JWT, attribution_secret=ATTRIBUTION
    )


async def _seed(url: str) -> tuple[str, str]:
    """(shop slug, a product id) of a shop carrying PRODUCTS products of two variants each."""
    engine = create_engine(_settings(url))
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        account = Account(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
        supplier = Supplier(name="Bench Farm", status=SupplierStatus.active, shipping_fee_minor=800)
        session.add_all([account, supplier])
        await session.flush()
        products = [
            {
                "ref": f"P{i}",
                "title": f"云南普洱茶饼 357g 第 {i} 号",
                "description": "临沧古树生普，2019 年压制。\nAged raw pu-erh from Lincang.",
                "category_id": "food.tea",
                "commission_bps": 1500,
                "markup_ceiling_bps": 1000,
                "status": "active",
                "image_urls": ["https://img.example.com/p.jpg"],
                "variants": [
                    {
                        "sku": f"S{i}-19",
                        "options": {"year": "2019"},
                        "price_minor": 12800,
                        "currency": "CNY",
                        "stock": 90,
                    },
                    {
                        "sku": f"S{i}-15",
                        "options": {"year": "2015"},
                        "price_minor": 26800,
                        "currency": "CNY",
                        "stock": 9,
                    },
                ],
            }
            for i in range(PRODUCTS)
        ]
        await catalogue.bulk_upsert(session, supplier.id, BulkUpsert(products=products))
        settings = _settings(url)
        shop = await shops.open_shop(session, settings, account.id, ShopCreate(name="Bench 茶铺"))
        product_ids = [p.id for p in await catalogue.supplier_product_rows(session, supplier.id)]
        for product_id in product_ids:
            await shops.add_product(
                session,
                settings,
                account.id,
                SelectionAdd(product_id=product_id, markup_bps=500, blurb="掌柜推荐，每天一壶。"),
            )
    await engine.dispose()
    return shop.slug, str(product_ids[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    need("wrk", "wrk")

    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    slug, product_id = asyncio.run(_seed(url))
    pages = {"product": f"/m/{slug}/p/{product_id}", "shop": f"/m/{slug}"}
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": url,
        "XIAOPU_JWT_SECRET": JWT,
        "XIAOPU_ATTRIBUTION_SECRET": ATTRIBUTION,
        "XIAOPU_LOG_LEVEL": "WARNING",
    }
    python = sys.executable
    our_port = free_port()
    ours = serve([python, "-m", "xiaopu.cli", "serve", "--port", str(our_port)], env)
    results: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {}
    sizes: dict[str, int] = {}
    try:
        wait_ready(our_port, "/healthz")
        for name, path in pages.items():
            body = httpx.get(f"http://127.0.0.1:{our_port}{path}").content
            sizes[name] = len(body)
            page_file = Path(tempfile.mkstemp(suffix=".html")[1])
            page_file.write_bytes(body)
            raw_port = free_port()
            raw = serve(
                [
                    python,
                    "-m",
                    "uvicorn",
                    "bench.raw_html:app",
                    "--port",
                    str(raw_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                {**env, "PYTHONPATH": str(ROOT), "XIAOPU_BENCH_PAGE": str(page_file)},
            )
            try:
                wait_ready(raw_port, "/")
                wrk(raw_port, 2, args.connections, None, "/")  # warm-up
                wrk(our_port, 2, args.connections, None, path)
                rounds = []
                # This machine's speed drifts from minute to minute: alternating rounds, and
                # the median of their ratios.
                for _ in range(args.rounds):
                    measured = []
                    for process, port, target in ((raw, raw_port, "/"), (ours, our_port, path)):
                        before = cpu_seconds(process.pid)
                        result = wrk(port, args.seconds, args.connections, None, target)
                        result["cpu_us"] = (
                            (cpu_seconds(process.pid) - before) / max(result["requests"], 1) * 1e6
                        )
                        measured.append(result)
                    rounds.append((measured[0], measured[1]))
                results[name] = rounds
            finally:
                raw.send_signal(signal.SIGINT)
                raw.wait(timeout=20)
                page_file.unlink(missing_ok=True)
    finally:
        ours.send_signal(signal.SIGINT)
        ours.wait(timeout=60)

    print(
        f"\nStorefront pages vs a raw ASGI app sending the same HTML: {args.rounds} alternating "
        f"rounds of {args.seconds}s, {args.connections} connections, 1 worker each, "
        "wrk + server + PostgreSQL on this machine"
    )
    print(
        f"{'round':<7}{'':22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}{'ratio':>8}"
    )
    failed = False
    for name, rounds in results.items():
        ratios = []
        for i, (base, result) in enumerate(rounds, 1):
            ratio = result["rps"] / base["rps"]
            ratios.append(ratio)
            for label, r in ((f"raw ASGI {name}", base), (f"xiaopu {name} page", result)):
                print(
                    f"{i:<7}{label:22}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
                    f"{r['cpu_us']:>12.1f}" + (f"{ratio:>8.0%}" if r is result else "")
                )
        median = statistics.median(ratios)
        bad = sum(int(result["bad"]) for _, result in rounds)
        print(
            f"{name} page: {sizes[name]} bytes of HTML, median ratio {median:.0%} "
            f"(target >= 25%), non-2xx answers {bad}"
        )
        failed = failed or bad > 0
    if not os.environ.get("XIAOPU_BENCH_KEEP"):
        asyncio.run(devdb.drop_database(server, DB))
    if failed:
        sys.exit("some answers were not 2xx")


if __name__ == "__main__":
    main()
