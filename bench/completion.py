"""Benchmark completion: release 1M held commission lines, against a bare UPDATE of 1M rows.

Usage: .venv/bin/python bench/completion.py [--lines 1000000] [--batch 1000]
Seeds orders, supplier orders, order lines and their commission lines directly with SQL (4 parts
per order line, 2 lines per supplier order, over 1,000 shops and 100 suppliers), then releases
them the way the completion job does (commissions.release, one transaction per batch of supplier
orders) and prints the time, lines per second, and the ratio to a bare UPDATE of as many rows in
the same run (target: 1M lines in <= 60 s). Checks that every line moved and the ledger reconciles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import ATTRIBUTION, JWT, server_url

from xiaopu import devdb
from xiaopu.commissions import service as commissions
from xiaopu.config import Environment, Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.ledger import service as ledger
from xiaopu.migrate import upgrade
from xiaopu.models import SupplierOrder

DB = "xiaopu_bench_completion"
PARTS_PER_LINE = 4
LINES_PER_ORDER = 2

SEED = [
    "INSERT INTO accounts (id, email, password_hash, status, created_at, updated_at) "
    "SELECT gen_random_uuid(), 'b' || g || '@example.com', 'x', 'active', now(), now() "
    "FROM generate_series(1, 1000) g",
    "INSERT INTO shops (id, owner_account_id, name, slug, level, completed_sales, created_at, "
    "updated_at) SELECT gen_random_uuid(), id, 'shop', 'shop-' || row_number() OVER (), "
    "'standard', 0, now(), now() FROM accounts",
    "INSERT INTO suppliers (id, name, status, created_at, updated_at) "
    "SELECT gen_random_uuid(), 'supplier ' || g, 'active', now(), now() "
    "FROM generate_series(1, 100) g",
    "INSERT INTO products (id, supplier_id, ref, title, description, image_urls, category_id, "
    "return_window_days, commission_bps, markup_ceiling_bps, status, search_terms, "
    "max_commission_bps, min_price_minor, created_at, updated_at) "
    "SELECT gen_random_uuid(), id, 'P', 'tea', '', ARRAY[]::varchar[], 'food.tea', 7, 1000, "
    "1000, 'active', '', 1000, 9900, now(), now() FROM suppliers",
    "INSERT INTO variants (id, product_id, supplier_id, sku, options, price_minor, currency, "
    "stock, commission_bps, low_stock_threshold, created_at, updated_at) "
    "SELECT gen_random_uuid(), id, supplier_id, 'S', '{}', 9900, 'CNY', 1000000, NULL, 0, "
    "now(), now() FROM products",
    # One supplier order per order; shops and suppliers spread round-robin.
    """
    CREATE TEMP TABLE bench_parts AS
    SELECT g, gen_random_uuid() AS order_id, gen_random_uuid() AS part_id,
           (SELECT array_agg(id ORDER BY id) FROM shops) AS shops,
           (SELECT array_agg(id ORDER BY id) FROM variants) AS variants
    FROM generate_series(1, :orders) g
    """,
    """
    INSERT INTO orders (id, shop_id, buyer_phone, address, status, currency, items_minor,
        shipping_minor, total_minor, refunded_minor, attribution, self_purchase, expires_at,
        paid_at, access_token_hash, created_at, updated_at)
    SELECT order_id, shops[1 + g % 1000], '+8613800138000', '{}', 'paid', 'CNY', 21780, 0,
        21780, 0, 'none', false, now(), now(), decode(md5(order_id::text), 'hex') ||
        decode(md5(part_id::text), 'hex'), now(), now()
    FROM bench_parts
    """,
    """
    INSERT INTO supplier_orders (id, order_id, supplier_id, shop_id, status, currency,
        items_minor, shipping_minor, total_minor, refunded_minor, shipping_refunded,
        delivered_at, return_closes_at, created_at, updated_at)
    SELECT b.part_id, b.order_id, v.supplier_id, b.shops[1 + g % 1000], 'delivered', 'CNY',
        21780, 0, 21780, 0, false, now(), now(), now(), now()
    FROM bench_parts b JOIN variants v ON v.id = b.variants[1 + g % 100]
    """,
    """
    INSERT INTO order_lines (id, order_id, supplier_order_id, product_id, variant_id, sku,
        title, options, quantity, currency, unit_price_minor, unit_markup_minor, base_minor,
        markup_minor, commission_bps, platform_fee_bps, return_window_days, returned_quantity,
        created_at)
    SELECT gen_random_uuid(), b.order_id, b.part_id, v.product_id, v.id, 'S', 'tea', '{}', 1,
        'CNY', 9900, 990, 9900, 990, 1000, 500, 7, 0, now()
    FROM bench_parts b JOIN variants v ON v.id = b.variants[1 + g % 100],
        generate_series(1, 2) n
    """,
    """
    INSERT INTO commissions (id, order_id, supplier_order_id, order_line_id, shop_id,
        supplier_id, beneficiary, kind, currency, base_minor, rate_bps, rule, rounding,
        accrued_minor, reversed_minor, status, created_at, updated_at)
    SELECT gen_random_uuid(), l.order_id, l.supplier_order_id, l.id, s.shop_id, s.supplier_id,
        p.beneficiary, p.kind, 'CNY', 9900, NULL, 'normal', 'exact', p.amount, 0, 'pending',
        now(), now()
    FROM order_lines l JOIN supplier_orders s ON s.id = l.supplier_order_id,
        (VALUES ('shop', 'commission', 990), ('shop', 'markup', 990),
                ('platform', 'platform_fee', 495), ('supplier', 'supplier_share', 8415))
            AS p(beneficiary, kind, amount)
    """,
    "CREATE TABLE bench_bare AS SELECT id, status, updated_at FROM commissions",
    "ANALYZE",
]


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test, database_url=url, jwt_secret=JWT, attribution_secret=ATTRIBUTION
    )


async def _run(url: str, lines: int, batch: int) -> None:
    engine = create_engine(_settings(url).model_copy(update={"db_statement_timeout_ms": 0}))
    sessionmaker = create_sessionmaker(engine)
    orders = lines // (PARTS_PER_LINE * LINES_PER_ORDER)
    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        for statement in SEED:
            await session.execute(text(statement), {"orders": orders})
    seeded = time.perf_counter() - started
    async with sessionmaker() as session:
        total = int(await session.scalar(text("SELECT count(*) FROM commissions")) or 0)
        ids = list(
            (await session.scalars(text("SELECT id FROM supplier_orders ORDER BY id"))).all()
        )

    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE bench_bare SET status = 'available', updated_at = now()")
        )
    bare = time.perf_counter() - started

    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        async with sessionmaker() as session, session.begin():
            parts = [SupplierOrder(id=i) for i in ids[start : start + batch]]
            await commissions.release(session, parts)
    released = time.perf_counter() - started

    async with sessionmaker() as session:
        left = await session.scalar(
            text("SELECT count(*) FROM commissions WHERE status = 'pending'")
        )
        released_events = await session.scalar(
            text("SELECT count(*) FROM commission_events WHERE action = 'released'")
        )
        moved = int(released_events or 0)
        problems = await ledger.reconcile(session)
    await engine.dispose()

    print(f"\nseeded {total:,} pending commission lines in {seeded:.1f} s")
    print(f"bare UPDATE of {total:,} rows:       {bare:6.1f} s")
    print(
        f"release (batches of {batch:,} supplier orders): {released:6.1f} s "
        f"({moved / released:,.0f} lines/s)"
    )
    print(f"ratio release ÷ bare UPDATE: {released / bare:.1f}× (target: 1M lines <= 60 s)")
    print(f"lines moved {moved:,}, still pending {left}, ledger problems {problems}")
    if moved != total or left or problems:
        sys.exit("completion accounting mismatch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    try:
        asyncio.run(_run(url, args.lines, args.batch))
    finally:
        if not os.environ.get("XIAOPU_BENCH_KEEP"):
            asyncio.run(devdb.drop_database(server, DB))


if __name__ == "__main__":
    main()
