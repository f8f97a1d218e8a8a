"""Benchmark GET /s/{code} against a raw ASGI 302 on this machine, and check no click is lost.

Usage: .venv/bin/python bench/redirect.py [--seconds 10] [--connections 64]
Needs wrk (Debian package; installed here if missing and possible) and a PostgreSQL: the one in
XIAOPU_BENCH_DATABASE_URL, else 127.0.0.1:5432, else an embedded one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (
    ATTRIBUTION,
    JWT,
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
from xiaopu.links.redirect import new_code
from xiaopu.migrate import upgrade
from xiaopu.models import Account, Click, ShareLink, Supplier, SupplierStatus
from xiaopu.shops import service as shops
from xiaopu.shops.schemas import SelectionAdd, ShopCreate

DB = "xiaopu_bench"
LINKS = 200


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test, database_url=url, jwt_secret=JWT, attribution_secret=ATTRIBUTION
    )


async def _seed(url: str) -> list[str]:
    engine = create_engine(_settings(url))
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        account = Account(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
        supplier = Supplier(name="Bench Farm", status=SupplierStatus.active)
        session.add_all([account, supplier])
        await session.flush()
        products = [
            {
                "ref": f"P{i}",
                "title": f"云南普洱茶 {i}",
                "category_id": "food.tea",
                "commission_bps": 1500,
                "markup_ceiling_bps": 1000,
                "status": "active",
                "image_urls": ["https://img.example.com/p.jpg"],
                "variants": [{"sku": f"S{i}", "price_minor": 9900, "currency": "CNY", "stock": 9}],
            }
            for i in range(20)
        ]
        await catalogue.bulk_upsert(session, supplier.id, BulkUpsert(products=products))
        settings = _settings(url)
        shop = await shops.open_shop(session, settings, account.id, ShopCreate())
        product_ids = [p.id for p in await catalogue.supplier_product_rows(session, supplier.id)]
        for product_id in product_ids:
            await shops.add_product(
                session, settings, account.id, SelectionAdd(product_id=product_id, markup_bps=500)
            )
        codes = [new_code() for _ in range(LINKS)]
        session.add_all(
            ShareLink(code=code, shop_id=shop.id, product_id=product_ids[i % len(product_ids)])
            for i, code in enumerate(codes)
        )
    await engine.dispose()
    return codes


async def _count_clicks(url: str) -> int:
    engine = create_engine(_settings(url))
    async with create_sessionmaker(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(Click))
    await engine.dispose()
    return int(count or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    need("wrk", "wrk")

    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    codes = asyncio.run(_seed(url))
    codes_file = Path(tempfile.mkstemp(suffix=".txt")[1])
    codes_file.write_text("\n".join(codes) + "\n")
    os.environ["XIAOPU_BENCH_CODES"] = str(codes_file)
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": url,
        "XIAOPU_JWT_SECRET": JWT,
        "XIAOPU_ATTRIBUTION_SECRET": ATTRIBUTION,
        "XIAOPU_LOG_LEVEL": "WARNING",
        "XIAOPU_BENCH_CODES": str(codes_file),
    }
    python = sys.executable

    port = free_port()
    raw = serve(
        [
            python,
            "-m",
            "uvicorn",
            "bench.raw_asgi:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        {**env, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_ready(port, "/")
        # The same wrk script drives both, so both pay the same load-generator cost.
        script = Path(__file__).with_name("links.lua")
        wrk(port, 2, args.connections, script, "/")  # warm-up
        baseline = wrk(port, args.seconds, args.connections, script, "/")
    finally:
        raw.send_signal(signal.SIGINT)
        raw.wait(timeout=20)

    port = free_port()
    ours = serve([python, "-m", "xiaopu.cli", "serve", "--port", str(port)], env)
    try:
        wait_ready(port, "/healthz")
        script = Path(__file__).with_name("links.lua")
        warm = wrk(port, 2, args.connections, script, "/")
        result = wrk(port, args.seconds, args.connections, script, "/")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        ours.send_signal(signal.SIGINT)  # graceful: the click buffer is written on the way out
        ours.wait(timeout=60)
    sent = int(warm["requests"] + result["requests"])
    recorded = re.search(r"^xiaopu_clicks_recorded_total ([\d.e+]+)$", metrics, re.MULTILINE)
    counted = int(float(recorded.group(1))) if recorded else -1
    stored = asyncio.run(_count_clicks(url))
    ratio = result["rps"] / baseline["rps"]

    print(
        f"\nGET /s/{{code}} vs a raw ASGI 302, {args.seconds}s, {args.connections} connections, "
        "1 worker, wrk + server + PostgreSQL on this machine"
    )
    print(f"{'':22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, r in (("raw ASGI 302", baseline), ("xiaopu /s/{code}", result)):
        print(f"{name:22}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}")
    print(f"ratio: {ratio:.0%} (target >= 50%)")
    print(f"non-3xx answers: {int(result['bad'])}")
    print(f"clicks sent {sent}, counted {counted}, stored {stored}")
    # wrk does not count the requests still in flight when its clock stops, so the server may
    # have answered (and counted) up to one more request per connection than wrk reports.
    if stored != counted or not 0 <= counted - sent <= 2 * args.connections:
        sys.exit("click accounting mismatch")
    if not os.environ.get("XIAOPU_BENCH_KEEP"):
        asyncio.run(devdb.drop_database(server, DB))


if __name__ == "__main__":
    main()
