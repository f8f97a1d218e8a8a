"""Queries for categories, a supplier's products and variants, and the sellable catalogue."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal_column, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.elements import ColumnClause

from xiaopu.db import Deferred, Read, defer
from xiaopu.kit.pagination import SelectT
from xiaopu.models import Category, Product, ProductStatus, Supplier, SupplierStatus, Variant


async def category_ids(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(Category.id))).all())


async def categories(session: AsyncSession) -> Sequence[Category]:
    return (await session.scalars(select(Category).order_by(Category.id))).all()


def supplier_products(supplier_id: uuid.UUID) -> Select[Product]:
    return select(Product).where(Product.supplier_id == supplier_id)


async def products_by_ref(
    session: AsyncSession, supplier_id: uuid.UUID, refs: Collection[str]
) -> dict[str, Product]:
    rows = await session.scalars(supplier_products(supplier_id).where(Product.ref.in_(refs)))
    return {p.ref: p for p in rows}


async def variants_by_sku(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    skus: Collection[str],
    *,
    for_update: bool = False,
) -> dict[str, Variant]:
    stmt = select(Variant).where(Variant.supplier_id == supplier_id, Variant.sku.in_(skus))
    if for_update:
        stmt = stmt.order_by(Variant.id).with_for_update()
    return {v.sku: v for v in await session.scalars(stmt)}


async def variant_counts(
    session: AsyncSession, product_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not product_ids:
        return {}
    stmt = (
        select(Variant.product_id, func.count())
        .where(Variant.product_id.in_(product_ids))
        .group_by(Variant.product_id)
    )
    return {product_id: int(n) for product_id, n in (await session.execute(stmt)).all()}


async def variants_of(session: AsyncSession, product_ids: Collection[uuid.UUID]) -> list[Variant]:
    stmt = select(Variant).where(Variant.product_id.in_(product_ids)).order_by(Variant.sku)
    return list((await session.scalars(stmt)).all())


async def product(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    product_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Product | None:
    stmt = supplier_products(supplier_id).where(Product.id == product_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def refresh_summaries(session: AsyncSession, product_ids: Collection[uuid.UUID]) -> None:
    """Recompute the sort keys kept on products from their variants."""
    if not product_ids:
        return
    effective = func.coalesce(Variant.commission_bps, Product.commission_bps)
    summary = (
        select(
            Variant.product_id,
            func.max(effective).label("max_commission"),
            func.min(Variant.price_minor).label("min_price"),
        )
        .join(Product, Product.id == Variant.product_id)
        .where(Variant.product_id.in_(product_ids))
        .group_by(Variant.product_id)
        .subquery()
    )
    await session.execute(
        update(Product)
        .where(Product.id == summary.c.product_id)
        .values(max_commission_bps=summary.c.max_commission, min_price_minor=summary.c.min_price)
    )


def sellable() -> Select[Product]:
    """Active products of active suppliers: what shops may show and buyers may order."""
    return (
        select(Product)
        .join(Supplier, Supplier.id == Product.supplier_id)
        .where(Product.status == ProductStatus.active, Supplier.status == SupplierStatus.active)
    )


def in_category(stmt: SelectT, category_id: str) -> SelectT:
    return stmt.where(
        or_(
            Product.category_id == category_id,
            Product.category_id.startswith(f"{category_id}.", autoescape=True),
        )
    )


def _after(
    stmt: Select[Product],
    product: Any,
    key: Any,
    key_value: int | None,
    last_id: uuid.UUID,
    descending: bool,
) -> Select[Product]:
    """Keyset continuation after (key_value, last_id), ties broken by id descending."""
    if key is None or key_value is None:
        return stmt.where(product.id < last_id)
    # The outer bound (key <= value, descending) is what the sort index seeks to; the rest
    # drops the ties already shown.
    if descending:
        return stmt.where(key <= key_value, or_(key < key_value, product.id < last_id))
    return stmt.where(key >= key_value, or_(key > key_value, product.id < last_id))


# A search ranks at most this many matches, the first the text index yields (in the table's
# order, not by any key): ranking every match of a common word would fetch and sort thousands of
# rows on every page.
SEARCH_CANDIDATES = 1000
# The text search configuration the search column is built with (a constant, so inlined).
_SIMPLE: ColumnClause[Any] = literal_column("'simple'::regconfig")


def browse_statement(
    *,
    tsquery: str | None,
    category_id: str | None,
    key: InstrumentedAttribute[int] | None,
    descending: bool,
    after: tuple[int | None, uuid.UUID] | None,
    limit: int,
) -> Select[Product]:
    """One page of the sellable catalogue, ordered by `key` (then id, newest first) or by id
    alone, continuing after (key value, id). Served by the partial sort indexes on active
    products (ix_products_by_commission, ix_products_by_price) or the primary key; a search
    ranks the SEARCH_CANDIDATES rows its text index yields first (whole rows, fetched once)."""
    product: Any = Product
    if tsquery is not None:
        candidates = select(Product).where(
            Product.status == ProductStatus.active,
            Product.search.op("@@")(func.to_tsquery(_SIMPLE, tsquery)),
        )
        if category_id:
            candidates = in_category(candidates, category_id)
        product = aliased(Product, candidates.limit(SEARCH_CANDIDATES).subquery("candidates"))
        stmt = (
            select(product)
            .join(Supplier, Supplier.id == product.supplier_id)
            .where(Supplier.status == SupplierStatus.active)
        )
    else:
        stmt = sellable()
        if category_id:
            stmt = in_category(stmt, category_id)
    order_key = None if key is None else getattr(product, key.key)
    if after is not None:
        stmt = _after(stmt, product, order_key, after[0], after[1], descending)
    if order_key is None:
        stmt = stmt.order_by(product.id.desc())
    else:
        stmt = stmt.order_by(order_key.desc() if descending else order_key.asc(), product.id.desc())
    return stmt.limit(limit)


# What checkout sells: read without locks (checkout commits as one statement, see db.py), its
# stock taken by that statement only where the stock still has the units.
_FOR_SALE = """
SELECT v.id, v.product_id, v.supplier_id, v.sku, v.options, v.price_minor, v.currency,
       v.stock, v.commission_bps AS variant_commission_bps, v.low_stock_threshold,
       p.title, p.status AS product_status, p.commission_bps, p.markup_ceiling_bps,
       p.return_window_days,
       s.name AS supplier_name, s.status AS supplier_status, s.shipping_fee_minor,
       s.shipping_currency
FROM variants AS v
JOIN products AS p ON p.id = v.product_id
JOIN suppliers AS s ON s.id = p.supplier_id
WHERE v.id IN ({ids})
"""

# The variants are locked in id order, so that concurrent orders on shared variants queue
# instead of deadlocking; under READ COMMITTED the row compared is the newest committed one,
# whatever the statement's snapshot saw, so a line short of stock, or whose price, currency or
# commission changed since checkout read them (a price change queued ahead of it, say), is
# simply not taken.
_TAKE_STOCK = """
UPDATE variants SET stock = variants.stock - l.quantity, updated_at = $1
FROM (
    SELECT v.id, w.quantity, w.price_minor, w.currency, w.commission_bps
    FROM variants AS v
    JOIN (VALUES {lines}) AS w (id, quantity, price_minor, currency, commission_bps)
        ON v.id = w.id
    ORDER BY v.id
    FOR UPDATE OF v
) AS l
WHERE variants.id = l.id AND variants.stock >= l.quantity
    AND variants.price_minor = l.price_minor AND variants.currency = l.currency
    AND variants.commission_bps IS NOT DISTINCT FROM l.commission_bps
RETURNING variants.id, variants.supplier_id, variants.product_id, variants.sku,
          variants.low_stock_threshold, variants.stock, l.quantity
"""
# Of the lines taken, those whose stock fell from at least its threshold to below it.
_CROSSED_LOW = """
SELECT id, supplier_id, product_id, sku, low_stock_threshold, stock, quantity FROM {written}
WHERE stock + quantity >= low_stock_threshold AND low_stock_threshold > stock
"""


@functools.cache
def _for_sale_sql(count: int) -> str:
    """The statement for this many variants, each a scalar parameter. With the ids in an array
    PostgreSQL never trusts a generic plan and plans the three-way join on every checkout, more
    than half of the statement's cost; with a fixed shape it keeps one. An order has at most
    max_order_lines lines, so the shapes are few."""
    return _FOR_SALE.format(ids=", ".join(f"${i + 1}::uuid" for i in range(count)))


# One line (most orders) has no lock order to keep: the row is updated straight away.
_TAKE_ONE = """
UPDATE variants SET stock = stock - $3, updated_at = $1
WHERE id = $2 AND stock >= $3
    AND price_minor = $4 AND currency = $5 AND commission_bps IS NOT DISTINCT FROM $6
RETURNING id, supplier_id, product_id, sku, low_stock_threshold, stock, $3::int AS quantity
"""
_TERMS = 5  # parameters per line: id, quantity and the terms read


@functools.cache
def _take_stock_sql(lines: int) -> str:
    if lines == 1:
        return _TAKE_ONE
    rows = ", ".join(
        f"(${n + 2}::uuid, ${n + 3}::int, ${n + 4}::bigint, ${n + 5}::varchar, ${n + 6}::smallint)"
        for n in range(0, _TERMS * lines, _TERMS)
    )
    return _TAKE_STOCK.format(lines=rows)


@dataclass(frozen=True, slots=True)
class ForSale:
    """A variant as checkout sells it, with its product's and supplier's terms and its stock
    when read."""

    variant_id: uuid.UUID
    product_id: uuid.UUID
    supplier_id: uuid.UUID
    sku: str
    options: dict[str, Any]
    price_minor: int
    currency: str
    stock: int
    variant_commission_bps: int | None
    low_stock_threshold: int
    title: str
    product_status: ProductStatus
    product_commission_bps: int
    markup_ceiling_bps: int
    return_window_days: int
    supplier_name: str
    supplier_status: SupplierStatus
    shipping_fee_minor: int
    shipping_currency: str


@dataclass(frozen=True, slots=True)
class Taken:
    """A variant whose stock a checkout took: what product.stock_low names, and the stock
    before and after."""

    variant_id: uuid.UUID
    supplier_id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    low_stock_threshold: int
    stock: int
    quantity: int


def for_checkout(variant_ids: Sequence[uuid.UUID]) -> Read[dict[uuid.UUID, ForSale]]:
    """The variants with their terms, by id, read without a lock or a transaction of its own
    (asked with checkout's other reads: db.read_together), and without ORM objects: checkout
    runs this on every order, and SQLAlchemy's per-statement and per-entity cost was most of
    its work."""
    return Read(_for_sale_sql(len(variant_ids)), tuple(variant_ids), _for_sale_rows)


def _for_sale_rows(rows: Sequence[Any]) -> dict[uuid.UUID, ForSale]:
    sales = {}
    for r in rows:  # in _FOR_SALE's column order
        sales[r[0]] = ForSale(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
            ProductStatus(r[11]), r[12], r[13], r[14], r[15], SupplierStatus(r[16]), r[17], r[18],
        )  # fmt: skip
    return sales


async def take_stock(
    session: AsyncSession,
    lines: Sequence[tuple[ForSale, int]],
    at: datetime,
    crossed_low: Callable[[list[Taken]], Awaitable[None]],
) -> None:
    """Take each line's units with the unit of work's commit: all of them, or, if a line's
    stock no longer has them or its variant's terms are no longer those read, none, and the
    unit of work fails with ConcurrentChange. `crossed_low` gets the variants whose stock fell
    below their threshold."""
    params: list[object] = [at]
    for sale, quantity in lines:
        params += [
            sale.variant_id,
            quantity,
            sale.price_minor,
            sale.currency,
            sale.variant_commission_bps,
        ]

    async def then(rows: Sequence[Any]) -> None:
        await crossed_low([Taken(*row) for row in rows])

    sql = _take_stock_sql(len(lines))
    await defer(session, Deferred((sql,), tuple(params), _CROSSED_LOW, then, expect=len(lines)))


# Locks in variant order, as checkout's take does, whatever order the units come in: two
# batches giving back (or a batch and a checkout) queue instead of deadlocking.
_GIVE_BACK = """
UPDATE variants SET stock = variants.stock + g.units, updated_at = :now
FROM (
    SELECT v.id, r.units
    FROM variants AS v
    JOIN unnest(CAST(:ids AS uuid[]), CAST(:units AS int[])) AS r (id, units) ON v.id = r.id
    ORDER BY v.id
    FOR UPDATE OF v
) AS g
WHERE variants.id = g.id
"""


async def give_back(session: AsyncSession, returned: dict[uuid.UUID, int], at: datetime) -> None:
    """Add units to these variants' stock, in one statement however many."""
    await session.execute(
        text(_GIVE_BACK),
        {"ids": list(returned), "units": list(returned.values()), "now": at},
    )


# As _GIVE_BACK, in the same lock order, taking only where every unit is there.
_SET_ASIDE = """
UPDATE variants SET stock = variants.stock - g.units, updated_at = :now
FROM (
    SELECT v.id, r.units
    FROM variants AS v
    JOIN unnest(CAST(:ids AS uuid[]), CAST(:units AS int[])) AS r (id, units) ON v.id = r.id
    WHERE v.supplier_id = :supplier_id
    ORDER BY v.id
    FOR UPDATE OF v
) AS g
WHERE variants.id = g.id AND variants.stock >= g.units
RETURNING variants.id
"""


async def set_aside(
    session: AsyncSession, supplier_id: uuid.UUID, units: dict[uuid.UUID, int], at: datetime
) -> set[uuid.UUID]:
    """Take units out of these variants' stock where each has them all; the variants taken."""
    rows = await session.execute(
        text(_SET_ASIDE),
        {"ids": list(units), "units": list(units.values()), "now": at, "supplier_id": supplier_id},
    )
    return {row[0] for row in rows}
