"""Benchmark GET /s/{code} against a raw ASGI 302 on this machine, and check no click is lost.

Usage: .venv/bin/python bench/redirect.py [--seconds 10] [--connections 64] [--rounds 3]
Needs wrk (Debian package; installed here if missing and possible) and a PostgreSQL: the one in
XIAOPU_BENCH_DATABASE_URL, else 127.0.0.1:5432, else an embedded one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select

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
    parser.add_argument("--rounds", type=int, default=3)
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

    script = Path(__file__).with_name("links.lua")  # the same wrk script drives both
    raw_port, our_port = free_port(), free_port()
    raw = serve(
        [
            python,
            "-m",
            "uvicorn",
            "bench.raw_asgi:app",
            "--port",
            str(raw_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        {**env, "PYTHONPATH": str(ROOT)},
    )
    ours = serve([python, "-m", "xiaopu.cli", "serve", "--port", str(our_port)], env)
    sent = 0
    rounds: list[tuple[dict[str, float], dict[str, float]]] = []
    try:
        wait_ready(raw_port, "/")
        wait_ready(our_port, "/healthz")
        wrk(raw_port, 2, args.connections, script, "/")  # warm-up
        sent += int(wrk(our_port, 2, args.connections, script, "/")["requests"])
        # This machine's speed drifts by a third from minute to minute, so the two are measured
        # in alternating rounds and judged by the median of the rounds' ratios.
        for _ in range(args.rounds):
            measured = []
            for server_process, port in ((raw, raw_port), (ours, our_port)):
                before = cpu_seconds(server_process.pid)
                result = wrk(port, args.seconds, args.connections, script, "/")
                # Ours includes the click writer's share: COPY runs in the same process.
                result["cpu_us"] = (
                    (cpu_seconds(server_process.pid) - before) / result["requests"] * 1e6
                )
                measured.append(result)
            sent += int(measured[1]["requests"])
            rounds.append((measured[0], measured[1]))
        time.sleep(1)  # requests still in the server when wrk stops are answered and counted
        metrics = httpx.get(f"http://127.0.0.1:{our_port}/metrics").text
    finally:
        raw.send_signal(signal.SIGINT)
        ours.send_signal(signal.SIGINT)  # graceful: the click buffer is written on the way out
        raw.wait(timeout=20)
        ours.wait(timeout=60)
        codes_file.unlink(missing_ok=True)
    recorded = re.search(r"^xiaopu_clicks_recorded_total ([\d.e+]+)$", metrics, re.MULTILINE)
    counted = int(float(recorded.group(1))) if recorded else -1
    stored = asyncio.run(_count_clicks(url))

    print(
        f"\nGET /s/{{code}} vs a raw ASGI 302: {args.rounds} alternating rounds of "
        f"{args.seconds}s, {args.connections} connections, 1 worker each, "
        "wrk + server + PostgreSQL on this machine"
    )
    print(
        f"{'round':<7}{'':18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}{'ratio':>8}"
    )
    ratios = []
    for i, (base, result) in enumerate(rounds, 1):
        ratio = result["rps"] / base["rps"]
        ratios.append(ratio)
        for name, r in (("raw ASGI 302", base), ("xiaopu /s/{code}", result)):
            print(
                f"{i:<7}{name:18}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
                f"{r['cpu_us']:>12.1f}" + (f"{ratio:>8.0%}" if r is result else "")
            )
    print(f"median ratio: {statistics.median(ratios):.0%} (target >= 50%)")
    bad = sum(int(result["bad"]) for _, result in rounds)
    print(f"non-3xx answers: {bad}")
    print(f"clicks sent {sent}, counted {counted}, stored {stored}")
    # wrk does not count the requests still in flight when its clock stops, so the server may
    # have answered (and counted) up to one more request per connection and run than reported.
    if stored != counted or not 0 <= counted - sent <= (args.rounds + 1) * args.connections:
        sys.exit("click accounting mismatch")
    if not os.environ.get("XIAOPU_BENCH_KEEP"):
        asyncio.run(devdb.drop_database(server, DB))


if __name__ == "__main__":
    main()
