"""The read paths of issue 19 use their indexes: each repository's own statement, explained on a
few thousand generated rows, reads the index named for it, and a keyset page needs no sort."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Executable, text
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.catalogue import repository as catalogue
from xiaopu.commissions import repository as commissions
from xiaopu.kit.pagination import PageParams
from xiaopu.ledger import repository as ledger
from xiaopu.models import Product
from xiaopu.models.ledger import OwnerKind
from xiaopu.settlements import repository as settlements
from xiaopu.shops import repository as shops

BIG = uuid.UUID("00000000-0000-7000-8000-0000000000b1")  # the big supplier and the big shop
SMALL = uuid.UUID("00000000-0000-7000-8000-0000000000a1")
T0 = datetime(2026, 9, 1, tzinfo=UTC)

# Synthetic rows, set-based, inside the test's transaction (rolled back at its end). Foreign
# keys are not checked for them (session_replication_role): the plans depend on the rows'
# statistics, not on the orders and shops they would belong to.
_BUILD = [
    "SET LOCAL session_replication_role = replica",
    """
    INSERT INTO suppliers (id, name, status, created_at, updated_at)
    SELECT CASE WHEN n = 0 THEN CAST(:big AS uuid) WHEN n = 1 THEN CAST(:small AS uuid)
        ELSE gen_random_uuid() END, 'supplier ' || n, 'active', now(), now()
    FROM generate_series(0, 39) AS n
    """,
    """
    INSERT INTO products (id, supplier_id, ref, title, description, image_urls, category_id,
        return_window_days, commission_bps, markup_ceiling_bps, status, search_terms,
        max_commission_bps, min_price_minor, created_at, updated_at)
    SELECT gen_random_uuid(), CAST(:big AS uuid), 'r' || n, 'product ' || n, '', '{}',
        'food.tea', 7, 500, 0, CASE WHEN n % 10 = 0 THEN 'draft' ELSE 'active' END,
        CASE WHEN n % 50 = 7 THEN 'tea' ELSE 'rice' END, (n * 7919) % 3000,
        1000 + (n * 104729) % 50000, now(), now()
    FROM generate_series(1, 6000) AS n
    """,
    """
    INSERT INTO variants (id, product_id, supplier_id, sku, options, price_minor, currency,
        stock, low_stock_threshold, created_at, updated_at)
    SELECT gen_random_uuid(), id, supplier_id, 'sku-' || ref, '{}', min_price_minor, 'CNY',
        CASE WHEN ref LIKE '%3' THEN 0 ELSE 10 END, 0, now(), now()
    FROM products
    """,
    """
    INSERT INTO shop_products (id, shop_id, product_id, markup_bps, created_at)
    SELECT gen_random_uuid(),
        CASE WHEN n % 4 = 0 THEN CAST(:big AS uuid) ELSE CAST(md5('shop' || n % 300) AS uuid) END,
        p.id, 0, now()
    FROM (SELECT id, row_number() OVER () AS n FROM products) AS p
    """,
    """
    INSERT INTO commissions (id, order_id, supplier_order_id, order_line_id, shop_id,
        supplier_id, beneficiary, kind, currency, base_minor, rule, rounding, accrued_minor,
        reversed_minor, status, created_at, updated_at)
    SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
        CAST(md5('shop' || n % 300) AS uuid),
        CASE WHEN n % 3 = 0 THEN CAST(:big AS uuid) WHEN n % 500 = 1 THEN CAST(:small AS uuid)
            ELSE CAST(md5('supplier' || n % 40) AS uuid) END,
        'supplier', 'supplier_share', 'CNY', 1000, 'normal', 'half-up', 900, 0,
        CASE WHEN n % 997 = 0 THEN 'held' ELSE 'available' END,
        CAST(:t0 AS timestamptz) + n * interval '20 minutes', now()
    FROM generate_series(1, 6000) AS n
    """,
    """
    INSERT INTO commission_events (id, commission_id, supplier_id, action, status, amount_minor,
        cause, at)
    SELECT gen_random_uuid(), c.id, c.supplier_id, a.action, 'pending', 900,
        a.action || ':' || c.id, c.created_at + a.later
    FROM commissions c CROSS JOIN (VALUES ('accrued', interval '0'),
        ('released', interval '10 days')) AS a (action, later)
    """,
    """
    INSERT INTO ledger_accounts (id, owner_kind, owner_id, purpose, currency, balance_minor,
        created_at)
    SELECT gen_random_uuid(), 'shop', CAST(md5('shop' || n / 4) AS uuid),
        (ARRAY['earnings_pending', 'earnings_held', 'earnings_available',
            'earnings_withdrawing'])[n % 4 + 1], 'CNY', 0, now()
    FROM generate_series(0, 1199) AS n
    """,
    """
    INSERT INTO ledger_entries (id, transaction_id, account_id, amount_minor, currency,
        created_at)
    SELECT gen_random_uuid(), gen_random_uuid(), a.id, -100, 'CNY', now()
    FROM ledger_accounts a CROSS JOIN generate_series(1, 10)
    """,
]
_TABLES = [
    "suppliers",
    "products",
    "variants",
    "shop_products",
    "commissions",
    "commission_events",
    "ledger_accounts",
    "ledger_entries",
]


@pytest.fixture
async def rows(session: AsyncSession) -> AsyncSession:
    params = {"big": BIG, "small": SMALL, "t0": T0}
    for sql in _BUILD:
        await session.execute(text(sql), {k: v for k, v in params.items() if f":{k}" in sql})
    for table in _TABLES:
        await session.execute(text(f"ANALYZE {table}"))
    # New rows wait in the text index's pending list until (auto)vacuum merges them, and the
    # planner prices a search by that list's length: whatever earlier tests left there would
    # decide the plan. Merge it, as a settled production table would have it.
    await session.execute(text("SELECT gin_clean_pending_list('ix_products_search'::regclass)"))
    # The tables are small: a sequential scan, or sorting a handful of rows, would win on cost
    # alone. With both priced out the plan shows whether an index can serve the filter and the
    # order (a Sort node remains where none can), which is what keeps these reads flat at scale
    # (bench/scale.py measures that).
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    await session.execute(text("SET LOCAL enable_sort = off"))
    return session


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def _plan(session: AsyncSession, stmt: Executable) -> list[dict[str, Any]]:
    """The plan of the repository's own statement, compiled as the app sends it (values
    inlined: the planner sees what a custom plan would)."""
    bind = session.get_bind()
    sql = stmt.compile(dialect=bind.dialect, compile_kwargs={"literal_binds": True})
    raw = await session.scalar(text(f"EXPLAIN (FORMAT JSON) {sql}"))
    (top,) = raw
    return _nodes(top["Plan"])


def _indexes(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Index Name"] for n in nodes if "Index Name" in n}


def _relations(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Relation Name"] for n in nodes if "Relation Name" in n}


def _sorts(nodes: list[dict[str, Any]]) -> list[str]:
    return [n["Node Type"] for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")]


async def test_the_wallet_reads_counters_and_no_ledger_entry(rows: AsyncSession) -> None:
    shop = uuid.UUID(await rows.scalar(text("SELECT CAST(md5('shop' || 7) AS uuid)::text")))
    nodes = await _plan(rows, ledger.kept_balances_statement(OwnerKind.shop, shop))
    assert _relations(nodes) == {"ledger_accounts"}
    assert "uq_ledger_accounts_owner_kind_owner_id_purpose_currency" in _indexes(nodes)
    # And what it reads is the accounts' counters, one row per account.
    found = (await rows.execute(ledger.kept_balances_statement(OwnerKind.shop, shop))).all()
    assert len(found) == 4


@pytest.mark.parametrize(
    ("key", "descending", "index"),
    [
        (Product.max_commission_bps, True, "ix_products_by_commission"),
        (Product.min_price_minor, False, "ix_products_by_price"),
    ],
)
async def test_catalogue_sorts_read_their_partial_index_in_order(
    rows: AsyncSession, key: Any, descending: bool, index: str
) -> None:
    first = catalogue.browse_statement(
        tsquery=None, category_id=None, key=key, descending=descending, after=None, limit=21
    )
    nodes = await _plan(rows, first)
    assert index in _indexes(nodes)
    assert _sorts(nodes) == []
    last = (await rows.scalars(first)).all()[-1]
    following = catalogue.browse_statement(
        tsquery=None,
        category_id=None,
        key=key,
        descending=descending,
        after=(int(getattr(last, key.key)), last.id),
        limit=21,
    )
    nodes = await _plan(rows, following)
    assert index in _indexes(nodes)
    assert _sorts(nodes) == []
    # The index condition bounds the page's start (key <= last value), not a filter on all.
    (scan,) = [n for n in nodes if n.get("Index Name") == index]
    assert "Index Cond" in scan


async def test_a_search_ranks_a_bounded_set_of_matches(rows: AsyncSession) -> None:
    # Ranking the candidates is a sort, and a bounded one: priced normally.
    await rows.execute(text("SET LOCAL enable_sort = on"))
    stmt = catalogue.browse_statement(
        tsquery="tea",
        category_id=None,
        key=Product.max_commission_bps,
        descending=True,
        after=None,
        limit=21,
    )
    nodes = await _plan(rows, stmt)
    assert "ix_products_search" in _indexes(nodes)
    limits = [n for n in nodes if n["Node Type"] == "Limit"]
    assert len(limits) == 2  # the page's, and the candidates' (SEARCH_CANDIDATES)
    found = (await rows.scalars(stmt)).all()
    assert len(found) == 21
    assert all(p.search_terms == "tea" for p in found)


async def test_a_shops_products_are_read_off_shop_id_and_id(rows: AsyncSession) -> None:
    for build in (shops.selections_statement, shops.public_selections_statement):
        nodes = await _plan(rows, build(BIG, None, 21))
        assert "ix_shop_products_shop_id" in _indexes(nodes), build
        assert _sorts(nodes) == [], build


async def test_held_lines_are_read_off_their_partial_index(rows: AsyncSession) -> None:
    nodes = await _plan(rows, commissions.held_statement(PageParams(limit=20, cursor=None)))
    assert "ix_commissions_held" in _indexes(nodes)
    assert _sorts(nodes) == []


async def test_statements_find_a_suppliers_movements_by_index(rows: AsyncSession) -> None:
    since, until = T0, T0 + timedelta(days=30)
    for supplier in (SMALL, BIG):
        for stmt in (
            commissions.statement_lines_statement(supplier, since, until, None, 101),
            commissions.statement_totals_statement(supplier, since, until),
            commissions.statement_events_statement(supplier, since, until, 6001),
        ):
            nodes = await _plan(rows, stmt)
            assert "ix_commission_events_supplier_id" in _indexes(nodes)
            (scan,) = [
                n for n in nodes if n.get("Index Name") == "ix_commission_events_supplier_id"
            ]
            assert "at >=" in scan["Index Cond"]  # the period bounds the range, not a filter


async def test_the_database_fills_in_an_events_supplier(rows: AsyncSession) -> None:
    await rows.execute(text("SET LOCAL session_replication_role = origin"))
    line = (
        await rows.execute(
            text("SELECT id, supplier_id FROM commissions WHERE supplier_id = :s LIMIT 1"),
            {"s": SMALL},
        )
    ).one()
    filled = await rows.scalar(
        text(
            "INSERT INTO commission_events (id, commission_id, action, status, amount_minor, "
            "cause, at) VALUES (gen_random_uuid(), :c, 'reversed', 'available', 1, 'test', now()) "
            "RETURNING supplier_id"
        ),
        {"c": line.id},
    )
    assert filled == line.supplier_id == SMALL


async def test_a_settlements_lines_are_paged_off_their_index(rows: AsyncSession) -> None:
    for after in (None, (T0, SMALL)):
        nodes = await _plan(rows, settlements.lines_statement(BIG, after, 101))
        assert "ix_settlement_lines_settlement_id" in _indexes(nodes), after
        assert _sorts(nodes) == [], after
