"""Benchmark completion: the completion job over 1M held commission lines, against a bare UPDATE
of 1M rows.

Usage: .venv/bin/python bench/completion.py [--lines 1000000] [--rounds 3]
Seeds, for each round, delivered supplier orders whose return window closes that day, with
their orders, order lines and commission lines, directly with SQL (4 parts per order line, 2
lines per supplier order, over 1,000 shops and 100 suppliers, 5 of which have a webhook endpoint
for supplier_order.completed). Then, in alternating rounds each after a VACUUM and a
CHECKPOINT, moves the clock to that day's closing and completes them the way the completion
job does (fulfilment.complete_due, one transaction per batch, until a batch comes back short:
commissions released, events written, sales counted), and runs a bare UPDATE of as many rows of
a copy of the commission lines. Prints each round's times and ratio and judges by the median
(target: 1M lines in <= 60 s). Checks that every line moved once, every supplier order has one
event and every order counts one sale, and the ledger reconciles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import ATTRIBUTION, JWT, server_url

from xiaopu import devdb
from xiaopu.config import Environment, Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.kit.clock import clock
from xiaopu.ledger import service as ledger
from xiaopu.migrate import upgrade
from xiaopu.orders import fulfilment

DB = "xiaopu_bench_completion"
PARTS_PER_LINE = 4
LINES_PER_ORDER = 2

SEED = [
    "INSERT INTO accounts (id, email, password_hash, status, created_at, updated_at) "
    "SELECT gen_random_uuid(), 'b' || g || '@example.com', 'x', 'active', now(), now() "
    "FROM generate_series(1, 1000) g",
    "INSERT INTO shops (id, owner_account_id, name, slug, level, completed_sales, created_at, "
    "updated_at) SELECT gen_random_uuid(), id, 'shop', 'shop-' || row_number() OVER (), "
    "'trial', 0, now(), now() FROM accounts",
    "INSERT INTO suppliers (id, name, status, created_at, updated_at) "
    "SELECT gen_random_uuid(), 'supplier ' || g, 'active', now(), now() "
    "FROM generate_series(1, 100) g",
    "INSERT INTO webhook_endpoints (id, owner_kind, owner_id, url, event_types, secret, status, "
    "created_at, updated_at) SELECT gen_random_uuid(), 'supplier', id, "
    "'https://hooks.example.com/x', "
    "ARRAY['supplier_order.completed'], 'whsec_x', 'enabled', now(), now() "
    "FROM (SELECT id FROM suppliers ORDER BY id LIMIT 5) s",
    "INSERT INTO products (id, supplier_id, ref, title, description, image_urls, category_id, "
    "return_window_days, commission_bps, markup_ceiling_bps, status, search_terms, "
    "max_commission_bps, min_price_minor, created_at, updated_at) "
    "SELECT gen_random_uuid(), id, 'P', 'tea', '', ARRAY[]::varchar[], 'food.tea', 7, 1000, "
    "1000, 'active', '', 1000, 9900, now(), now() FROM suppliers",
    "INSERT INTO variants (id, product_id, supplier_id, sku, options, price_minor, currency, "
    "stock, commission_bps, low_stock_threshold, created_at, updated_at) "
    "SELECT gen_random_uuid(), id, supplier_id, 'S', '{}', 9900, 'CNY', 1000000, NULL, 0, "
    "now(), now() FROM products",
    # One supplier order per order; shops and suppliers spread round-robin; round r's orders
    # (g % rounds = r) close their return window r days from now.
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
        carrier, tracking_number, delivered_at, return_closes_at, created_at, updated_at)
    SELECT b.part_id, b.order_id, v.supplier_id, b.shops[1 + g % 1000], 'delivered', 'CNY',
        21780, 0, 21780, 0, false, 'sf', 'SF' || g, now(),
        now() + (g % :rounds) * interval '1 day', now(), now()
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
    "CREATE TABLE bench_bare AS SELECT id, status, updated_at FROM commissions LIMIT :lines",
    "ALTER TABLE bench_bare ADD PRIMARY KEY (id)",
]


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test, database_url=url, jwt_secret=JWT, attribution_secret=ATTRIBUTION
    )


async def _quiesce(url: str) -> None:
    """VACUUM (the last round's dead rows gone) and CHECKPOINT (no full-page writes owed)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _complete_all(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> tuple[float, int]:
    started = time.perf_counter()
    completed = 0
    while True:
        async with sessionmaker() as session, session.begin():
            n = await fulfilment.complete_due(session, settings)
        completed += n
        if n < fulfilment.COMPLETION_BATCH:
            return time.perf_counter() - started, completed


async def _bare(sessionmaker: async_sessionmaker[AsyncSession]) -> float:
    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE bench_bare SET status = 'available', updated_at = now()")
        )
    return time.perf_counter() - started


async def _count(sessionmaker: async_sessionmaker[AsyncSession], sql: str) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(text(sql)) or 0)


async def _run(url: str, lines: int, rounds: int) -> None:
    settings = _settings(url).model_copy(update={"db_statement_timeout_ms": 0})
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    orders = lines // (PARTS_PER_LINE * LINES_PER_ORDER)
    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        for statement in SEED:
            params = {"orders": orders * rounds, "rounds": rounds, "lines": lines}
            await session.execute(text(statement), params)
    seeded = time.perf_counter() - started
    total = await _count(sessionmaker, "SELECT count(*) FROM commissions")
    print(
        f"\nseeded {total:,} pending commission lines ({orders:,} delivered supplier orders "
        f"a round) in {seeded:.1f} s; batches of {fulfilment.COMPLETION_BATCH:,} supplier "
        "orders, one transaction each\n"
    )

    ratios = []
    for i in range(1, rounds + 1):
        if i > 1:
            clock.advance(timedelta(days=1))  # the next round's return windows close
        await _quiesce(url)
        completion, completed = await _complete_all(sessionmaker, settings)
        await _quiesce(url)
        bare = await _bare(sessionmaker)
        ratios.append(completion / bare)
        print(
            f"round {i}: completed {completed:,} supplier orders ({completed * 8:,} lines) in "
            f"{completion:5.1f} s ({completed * 8 / completion:,.0f} lines/s); bare UPDATE of "
            f"{lines:,} rows {bare:5.2f} s; ratio {completion / bare:4.1f}x"
        )

    left = await _count(sessionmaker, "SELECT count(*) FROM commissions WHERE status = 'pending'")
    moved = await _count(
        sessionmaker, "SELECT count(*) FROM commission_events WHERE action = 'released'"
    )
    events = await _count(
        sessionmaker,
        "SELECT count(*) FROM events WHERE type = 'supplier_order.completed'",
    )
    deliveries = await _count(sessionmaker, "SELECT count(*) FROM webhook_deliveries")
    subscribed = await _count(
        sessionmaker,
        "SELECT count(*) FROM supplier_orders s JOIN webhook_endpoints w "
        "ON w.owner_kind = 'supplier' AND w.owner_id = s.supplier_id",
    )
    sales = await _count(sessionmaker, "SELECT sum(completed_sales) FROM shops")
    async with sessionmaker() as session:
        problems = await ledger.reconcile(session)
    await engine.dispose()
    parts = orders * rounds
    print(f"\nmedian ratio completion ÷ bare UPDATE: {statistics.median(ratios):.1f}x")
    print(
        f"lines moved {moved:,} of {total:,}, still pending {left}; events {events:,} of "
        f"{parts:,} supplier orders; deliveries {deliveries:,} of {subscribed:,}; sales counted "
        f"{sales:,} of {parts:,} orders; ledger problems {problems}"
    )
    if (moved, left, events, deliveries, sales, problems) != (
        total,
        0,
        parts,
        subscribed,
        parts,
        0,
    ):
        sys.exit("completion accounting mismatch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    try:
        asyncio.run(_run(url, args.lines, args.rounds))
    finally:
        if not os.environ.get("XIAOPU_BENCH_KEEP"):
            asyncio.run(devdb.drop_database(server, DB))


if __name__ == "__main__":
    main()
