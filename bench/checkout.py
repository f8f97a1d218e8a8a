"""Benchmark checkout (POST /v1/orders) on one worker against pgbench's TPC-B on the same machine.

Usage: .venv/bin/python bench/checkout.py [--seconds 10] [--connections 16] [--rounds 3]
Needs wrk and pgbench (Debian packages) and a PostgreSQL: the one in XIAOPU_BENCH_DATABASE_URL,
else 127.0.0.1:5432, else an embedded one. Checkout and TPC-B run in alternating rounds, each
after a CHECKPOINT (so that neither starts with fewer full-page writes ahead of it than the
other); prints each round's orders/s, p50, p99, TPC-B tps and ratio, and judges by the median
ratio (target >= 0.25). Checks that every order answered 201 is stored, with its stock taken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

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
from xiaopu.migrate import upgrade
from xiaopu.models import Account, Order, Supplier, SupplierStatus, Variant
from xiaopu.shops import service as shops
from xiaopu.shops.schemas import SelectionAdd, ShopCreate

DB = "xiaopu_bench_checkout"
TPCB_DB = "xiaopu_bench_tpcb"
PRODUCTS = 200
STOCK = 1_000_000_000


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test, database_url=url, jwt_secret=JWT, attribution_secret=ATTRIBUTION
    )


async def _seed(url: str) -> tuple[str, list[str]]:
    """A shop carrying many products, each with stock that will not run out: (slug, variants)."""
    engine = create_engine(_settings(url))
    async with create_sessionmaker(engine)() as session, session.begin():
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
                "variants": [
                    {"sku": f"S{i}", "price_minor": 9900, "currency": "CNY", "stock": STOCK}
                ],
            }
            for i in range(PRODUCTS)
        ]
        await catalogue.bulk_upsert(session, supplier.id, BulkUpsert(products=products))
        settings = _settings(url)
        shop = await shops.open_shop(session, settings, account.id, ShopCreate())
        for _ in range(settings.standard_shop_after_sales):  # a standard shop: no product limit
            await shops.record_completed_sale(session, settings, shop.id)
        for product in await catalogue.supplier_product_rows(session, supplier.id):
            await shops.add_product(
                session, settings, account.id, SelectionAdd(product_id=product.id, markup_bps=500)
            )
        variants = list(
            (
                await session.scalars(select(Variant.id).where(Variant.supplier_id == supplier.id))
            ).all()
        )
    await engine.dispose()
    return shop.slug, [str(v) for v in variants]


async def _stored(url: str) -> tuple[int, int]:
    """(orders stored, units taken from stock)."""
    engine = create_engine(_settings(url))
    async with create_sessionmaker(engine)() as session:
        orders = await session.scalar(select(func.count()).select_from(Order))
        left = await session.scalar(select(func.sum(Variant.stock)))
    await engine.dispose()
    return int(orders or 0), PRODUCTS * STOCK - int(left or 0)


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _tpcb_init(server: str) -> str:
    """pgbench's TPC-B-like tables on their own database (scale 10); its libpq URL."""
    asyncio.run(devdb.create_database(server, TPCB_DB, replace=True))
    url = _libpq(devdb.with_database(server, TPCB_DB))
    subprocess.run(["pgbench", "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    return url


def _tpcb(url: str, seconds: int, clients: int) -> float:
    """pgbench's built-in TPC-B-like script: its tps."""
    out = subprocess.run(
        ["pgbench", "-b", "tpcb-like", "-c", str(clients), "-j", "2", "-T", str(seconds), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"pgbench printed no tps:\n{out}")
    return float(match.group(1))


def _checkpoint(server: str) -> None:
    subprocess.run(["psql", "-q", "-c", "CHECKPOINT", _libpq(server)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    need("wrk", "wrk")
    need("pgbench", "postgresql-client")

    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    slug, variants = asyncio.run(_seed(url))
    # Planner statistics, as a database in service has them (pgbench -i makes TPC-B's own).
    subprocess.run(["psql", "-q", "-c", "ANALYZE", _libpq(url)], check=True)
    tpcb_url = _tpcb_init(server)
    data = Path(tempfile.mkstemp(suffix=".txt")[1])
    data.write_text("\n".join([slug, *variants]) + "\n")  # line 1: the shop; then variants
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": url,
        "XIAOPU_JWT_SECRET": JWT,
        "XIAOPU_ATTRIBUTION_SECRET": ATTRIBUTION,
        "XIAOPU_LOG_LEVEL": "WARNING",
        "XIAOPU_BENCH_CHECKOUT": str(data),
    }
    os.environ["XIAOPU_BENCH_CHECKOUT"] = str(data)
    script = Path(__file__).with_name("checkout.lua")
    port = free_port()
    app = serve([sys.executable, "-m", "xiaopu.cli", "serve", "--port", str(port)], env)
    rounds: list[tuple[dict[str, float], float]] = []
    try:
        wait_ready(port, "/healthz")
        warm = wrk(port, 2, args.connections, script, "/v1/orders")
        answered = int(warm["requests"])
        bad = int(warm["bad"])
        for _ in range(args.rounds):
            _checkpoint(server)
            result = wrk(port, args.seconds, args.connections, script, "/v1/orders")
            _checkpoint(server)
            rounds.append((result, _tpcb(tpcb_url, args.seconds, args.connections)))
            answered += int(result["requests"])
            bad += int(result["bad"])
    finally:
        app.send_signal(signal.SIGINT)
        app.wait(timeout=60)
        asyncio.run(devdb.drop_database(server, TPCB_DB))
    orders, units = asyncio.run(_stored(url))

    print(
        f"\nPOST /v1/orders (guest, 1 line, Idempotency-Key) vs pgbench TPC-B: {args.rounds} "
        f"alternating rounds of {args.seconds}s, {args.connections} connections, 1 worker, "
        "load + server + PostgreSQL on this machine"
    )
    print(f"{'round':8}{'orders/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'TPC-B tps':>12}{'ratio':>8}")
    ratios = []
    for i, (result, tps) in enumerate(rounds, 1):
        ratios.append(result["rps"] / tps)
        print(
            f"{i:<8}{result['rps']:>10.0f}{result['p50']:>10.2f}{result['p99']:>10.2f}"
            f"{tps:>12.0f}{ratios[-1]:>8.2f}"
        )
    print(f"median ratio orders/s ÷ TPC-B tps: {statistics.median(ratios):.2f} (target >= 0.25)")
    print(f"non-2xx answers: {bad}")
    print(f"orders answered {answered}, stored {orders}, units taken {units}")
    # Requests still in flight when wrk's clock stopped were answered but not counted by wrk.
    if bad or not 0 <= orders - answered <= (args.rounds + 1) * args.connections:
        sys.exit("order accounting mismatch")
    if units != orders:
        sys.exit("stock accounting mismatch")
    if os.environ.get("XIAOPU_BENCH_KEEP"):
        print(f"kept database {DB}; its shop and variants are listed in {data}")
    else:
        asyncio.run(devdb.drop_database(server, DB))
        data.unlink()


if __name__ == "__main__":
    main()
