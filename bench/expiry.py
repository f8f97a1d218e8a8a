"""Benchmark expiry: expire 100,000 abandoned orders, against a bare UPDATE of as many rows.

Usage: .venv/bin/python bench/expiry.py [--orders 100000] [--rounds 3]
Seeds unpaid orders past their time directly with SQL (1 to 3 lines each, 1 to 3 units a line,
over 2,000 variants of 100 suppliers and 1,000 shops, one supplier order per supplier of an
order), then, in alternating rounds each after a VACUUM and a CHECKPOINT, expires them the way
the expiry job does (service.expire_due, one transaction per batch, until a batch comes back
short) and runs a bare UPDATE of as many rows of a copy of the orders' table. Prints each
round's times and ratio and judges by the median ratio (target <= 30x). Checks after each
round that every order and supplier order expired, each order has one order.expired event, and
every variant's stock is what it was plus exactly the units its lines held.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
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
from xiaopu.migrate import upgrade
from xiaopu.orders import service

DB = "xiaopu_bench_expiry"

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
    "INSERT INTO products (id, supplier_id, ref, title, description, image_urls, category_id, "
    "return_window_days, commission_bps, markup_ceiling_bps, status, search_terms, "
    "max_commission_bps, min_price_minor, created_at, updated_at) "
    "SELECT gen_random_uuid(), s.id, 'P' || g, 'tea', '', ARRAY[]::varchar[], 'food.tea', 7, "
    "1000, 1000, 'active', '', 1000, 9900, now(), now() "
    "FROM suppliers s, generate_series(1, 10) g",
    "INSERT INTO variants (id, product_id, supplier_id, sku, options, price_minor, currency, "
    "stock, commission_bps, low_stock_threshold, created_at, updated_at) "
    "SELECT gen_random_uuid(), p.id, p.supplier_id, p.ref || '-' || g, '{}', 1900 + 1000 * g, "
    "'CNY', 1000000, NULL, 10, now(), now() FROM products p, generate_series(1, 2) g",
    # Lines: order g has 1 + g % 3 of them, on variants far apart (so mostly of several
    # suppliers), of 1 to 3 units.
    """
    CREATE TABLE bench_lines AS
    WITH a AS (
        SELECT (SELECT array_agg(id ORDER BY id) FROM shops) AS shops,
            (SELECT array_agg(id ORDER BY id) FROM variants) AS variants
    ), o AS (  -- volatile (gen_random_uuid): computed once per order, not inlined
        SELECT g, gen_random_uuid() AS order_id, a.shops[1 + g % 1000] AS shop_id, a.variants
        FROM a, generate_series(1, :orders) g
    )
    SELECT o.order_id, o.shop_id, v.id AS variant_id, v.product_id, v.supplier_id, v.sku,
        v.price_minor, 1 + (o.g + k) % 3 AS quantity
    FROM o
    CROSS JOIN LATERAL generate_series(0, o.g % 3) AS k
    JOIN variants v ON v.id = o.variants[1 + (o.g * 7 + k * 667) % 2000]
    """,
    """
    CREATE TABLE bench_parts AS
    SELECT order_id, shop_id, supplier_id, gen_random_uuid() AS part_id,
        sum(price_minor * 11 / 10 * quantity)::bigint AS items_minor
    FROM bench_lines GROUP BY order_id, shop_id, supplier_id
    """,
    """
    INSERT INTO orders (id, shop_id, buyer_phone, address, status, currency, items_minor,
        shipping_minor, total_minor, refunded_minor, attribution, self_purchase, expires_at,
        access_token_hash, created_at, updated_at)
    SELECT order_id, shop_id, '+8613800138000', '{}', 'pending_payment', 'CNY',
        sum(items_minor), 0, sum(items_minor), 0, 'none', false,
        now() - interval '1 minute',
        decode(md5(order_id::text), 'hex') || decode(md5(order_id::text || 'x'), 'hex'),
        now() - interval '31 minutes', now() - interval '31 minutes'
    FROM bench_parts GROUP BY order_id, shop_id
    """,
    """
    INSERT INTO supplier_orders (id, order_id, supplier_id, shop_id, status, currency,
        items_minor, shipping_minor, total_minor, refunded_minor, shipping_refunded,
        created_at, updated_at)
    SELECT part_id, order_id, supplier_id, shop_id, 'pending_payment', 'CNY', items_minor, 0,
        items_minor, 0, false, now(), now()
    FROM bench_parts
    """,
    """
    INSERT INTO order_lines (id, order_id, supplier_order_id, product_id, variant_id, sku,
        title, options, quantity, currency, unit_price_minor, unit_markup_minor, base_minor,
        markup_minor, commission_bps, platform_fee_bps, return_window_days, returned_quantity,
        created_at)
    SELECT gen_random_uuid(), l.order_id, p.part_id, l.product_id, l.variant_id, l.sku, 'tea',
        '{}', l.quantity, 'CNY', l.price_minor, l.price_minor / 10, l.price_minor * l.quantity,
        l.price_minor / 10 * l.quantity, 1000, 500, 7, 0, now()
    FROM bench_lines l JOIN bench_parts p USING (order_id, supplier_id)
    """,
    # What each variant's stock must come back to: now, plus the units its lines hold.
    """
    CREATE TABLE bench_stock AS
    SELECT v.id, v.stock AS before, coalesce(sum(l.quantity), 0)::int AS released
    FROM variants v LEFT JOIN bench_lines l ON l.variant_id = v.id GROUP BY v.id, v.stock
    """,
    "CREATE TABLE bench_bare AS SELECT id, status, expired_at, updated_at FROM orders",
    "ALTER TABLE bench_bare ADD PRIMARY KEY (id)",
]

RESET = [
    "UPDATE orders SET status = 'pending_payment', expired_at = NULL",
    "UPDATE supplier_orders SET status = 'pending_payment'",
    "UPDATE variants v SET stock = b.before FROM bench_stock b WHERE v.id = b.id",
    "DELETE FROM events",
    "DELETE FROM pgqueuer",
]


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test, database_url=url, jwt_secret=JWT, attribution_secret=ATTRIBUTION
    )


async def _quiesce(plain_url: str) -> None:
    """VACUUM (the last round's dead rows gone) and CHECKPOINT (no full-page writes owed)."""
    conn = await asyncpg.connect(plain_url)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _expire_all(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[float, int]:
    started = time.perf_counter()
    expired = 0
    while True:
        async with sessionmaker() as session, session.begin():
            n = await service.expire_due(session)
        expired += n
        if n < service.EXPIRY_BATCH:
            return time.perf_counter() - started, expired


async def _bare(sessionmaker: async_sessionmaker[AsyncSession]) -> float:
    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE bench_bare SET status = 'expired', expired_at = now(), updated_at = now()")
        )
    return time.perf_counter() - started


async def _check(sessionmaker: async_sessionmaker[AsyncSession], orders: int) -> list[str]:
    problems = []
    async with sessionmaker() as session:
        statuses = dict(
            (await session.execute(text("SELECT status, count(*) FROM orders GROUP BY 1"))).all()
        )
        parts = dict(
            (
                await session.execute(
                    text("SELECT status, count(*) FROM supplier_orders GROUP BY 1")
                )
            ).all()
        )
        events, distinct = (
            await session.execute(
                text(
                    "SELECT count(*), count(DISTINCT data->>'order_id') FROM events "
                    "WHERE type = 'order.expired'"
                )
            )
        ).one()
        wrong_stock = await session.scalar(
            text(
                "SELECT count(*) FROM variants v JOIN bench_stock b ON b.id = v.id "
                "WHERE v.stock <> b.before + b.released"
            )
        )
    if statuses != {"expired": orders}:
        problems.append(f"orders {statuses}")
    if set(parts) != {"expired"}:
        problems.append(f"supplier orders {parts}")
    if (events, distinct) != (orders, orders):
        problems.append(f"{events} order.expired events ({distinct} orders) for {orders}")
    if wrong_stock:
        problems.append(f"{wrong_stock} variants' stock is not before + released")
    return problems


async def _run(url: str, plain_url: str, orders: int, rounds: int) -> None:
    engine = create_engine(_settings(url).model_copy(update={"db_statement_timeout_ms": 0}))
    sessionmaker = create_sessionmaker(engine)
    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        for statement in SEED:
            await session.execute(text(statement), {"orders": orders})
    seeded = time.perf_counter() - started
    async with sessionmaker() as session:
        counts = (
            await session.execute(
                text(
                    "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM supplier_orders),"
                    " (SELECT count(*) FROM order_lines), (SELECT sum(released) FROM bench_stock)"
                )
            )
        ).one()
    n_orders, n_parts, n_lines, units = counts
    print(
        f"\nseeded {n_orders:,} unpaid orders past their time ({n_parts:,} supplier orders, "
        f"{n_lines:,} lines, {units:,} units on 2,000 variants) in {seeded:.1f} s"
    )
    print(f"expiry batches of {service.EXPIRY_BATCH:,} orders, one transaction each\n")

    ratios = []
    failed = []
    for i in range(1, rounds + 1):
        if i > 1:
            async with sessionmaker() as session, session.begin():
                for statement in RESET:
                    await session.execute(text(statement))
        await _quiesce(plain_url)
        expiry, expired = await _expire_all(sessionmaker)
        problems = await _check(sessionmaker, n_orders)
        await _quiesce(plain_url)
        bare = await _bare(sessionmaker)
        ratios.append(expiry / bare)
        failed += problems
        print(
            f"round {i}: expired {expired:,} in {expiry:5.2f} s ({expired / expiry:,.0f} "
            f"orders/s); bare UPDATE of {n_orders:,} rows {bare:5.2f} s; "
            f"ratio {expiry / bare:4.1f}x{'  ' + '; '.join(problems) if problems else ''}"
        )
    await engine.dispose()
    print(f"\nmedian ratio expiry ÷ bare UPDATE: {statistics.median(ratios):.1f}x (target <= 30x)")
    if failed:
        sys.exit("expiry accounting mismatch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        asyncio.run(_run(url, plain, args.orders, args.rounds))
    finally:
        if not os.environ.get("XIAOPU_BENCH_KEEP"):
            asyncio.run(devdb.drop_database(server, DB))


if __name__ == "__main__":
    main()
