"""Dashboard reads: rollup rows of a tenant and a range of local days, through their indexes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.models import Product, ShareLink, Shop, ShopProduct, Variant
from xiaopu.models.insights import (
    PlatformDaily,
    PlatformSalesDaily,
    SalesDaily,
    ShopDaily,
    ShopDailyTraffic,
    SupplierDaily,
    SupplierProductDaily,
    VariantDaily,
)
from xiaopu.models.links import LinkDailyStats

# The shop's earnings that stand: everything not forfeited or taken back.
_STANDING = (
    SalesDaily.earnings_pending_minor
    + SalesDaily.earnings_held_minor
    + SalesDaily.earnings_available_minor
    + SalesDaily.earnings_paid_minor
)


async def shop_traffic(
    session: AsyncSession, shop_id: uuid.UUID, since: date, until: date
) -> Sequence[ShopDailyTraffic]:
    stmt = select(ShopDailyTraffic).where(
        ShopDailyTraffic.shop_id == shop_id, ShopDailyTraffic.day.between(since, until)
    )
    return (await session.scalars(stmt)).all()


async def shop_days(
    session: AsyncSession, shop_id: uuid.UUID, since: date, until: date
) -> Sequence[ShopDaily]:
    stmt = select(ShopDaily).where(
        ShopDaily.shop_id == shop_id, ShopDaily.day.between(since, until)
    )
    return (await session.scalars(stmt)).all()


def _traffic(shop_id: uuid.UUID, since: date, until: date, by_product: bool) -> Any:
    key = LinkDailyStats.product_id if by_product else LinkDailyStats.link_id
    stmt = (
        select(
            key.label("key"),
            func.sum(LinkDailyStats.clicks).label("clicks"),
            func.sum(LinkDailyStats.unique_visitors).label("visitors"),
        )
        .where(LinkDailyStats.shop_id == shop_id, LinkDailyStats.day.between(since, until))
        .group_by(key)
    )
    if by_product:
        stmt = stmt.where(LinkDailyStats.product_id.is_not(None))
    return stmt.subquery("traffic")


def _shop_sales(
    shop_id: uuid.UUID, since: date, until: date, by_product: bool, keys: Sequence[uuid.UUID] | None
) -> Any:
    key = SalesDaily.product_id if by_product else SalesDaily.link_id
    stmt = select(key.label("key")).where(
        SalesDaily.shop_id == shop_id, SalesDaily.day.between(since, until)
    )
    if keys is not None:
        stmt = stmt.where(key.in_(keys))
    return stmt, key


async def shop_ranking(
    session: AsyncSession,
    shop_id: uuid.UUID,
    since: date,
    until: date,
    *,
    by_product: bool,
    sort: str,
    limit: int | None,
) -> Sequence[Any]:
    """(key, clicks, visitors, orders, units, refunded units) per link (NO_LINK for sales
    through none) or product, ranked by `sort` in the database: only the top rows come back."""
    traffic = _traffic(shop_id, since, until, by_product)
    sales_stmt, key = _shop_sales(shop_id, since, until, by_product, None)
    sales = (
        sales_stmt.add_columns(
            func.sum(SalesDaily.orders).label("orders"),
            func.sum(SalesDaily.units).label("units"),
            func.sum(SalesDaily.refunded_units).label("refunded"),
        )
        .group_by(key)
        .subquery("sales")
    )
    merged_key = func.coalesce(traffic.c.key, sales.c.key)
    columns = {
        "clicks": func.coalesce(traffic.c.clicks, 0),
        "visitors": func.coalesce(traffic.c.visitors, 0),
        "orders": func.coalesce(sales.c.orders, 0),
        "units": func.coalesce(sales.c.units, 0),
        "refunded": func.coalesce(sales.c.refunded, 0),
    }
    stmt = (
        select(merged_key, *columns.values())
        .select_from(traffic.join(sales, traffic.c.key == sales.c.key, full=True))
        .order_by(columns[sort].desc(), merged_key)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return (await session.execute(stmt)).all()


async def shop_money(
    session: AsyncSession,
    shop_id: uuid.UUID,
    since: date,
    until: date,
    *,
    by_product: bool,
    keys: Sequence[uuid.UUID] | None,
) -> Sequence[Any]:
    """(key, currency, GMV, standing earnings) of the keys given (every key: None)."""
    stmt, key = _shop_sales(shop_id, since, until, by_product, keys)
    stmt = stmt.add_columns(
        SalesDaily.currency, func.sum(SalesDaily.gmv_minor), func.sum(_STANDING)
    ).group_by(key, SalesDaily.currency)
    return (await session.execute(stmt)).all()


async def link_labels(
    session: AsyncSession, shop_id: uuid.UUID, link_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """A label per link: its own, else its product's title."""
    stmt = (
        select(ShareLink.id, func.coalesce(ShareLink.label, Product.title))
        .outerjoin(Product, Product.id == ShareLink.product_id)
        .where(ShareLink.shop_id == shop_id, ShareLink.id.in_(link_ids))
    )
    return {row[0]: row[1] for row in await session.execute(stmt)}


async def titles(session: AsyncSession, product_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    stmt = select(Product.id, Product.title).where(Product.id.in_(product_ids))
    return {row[0]: row[1] for row in await session.execute(stmt)}


async def supplier_days(
    session: AsyncSession, supplier_id: uuid.UUID, since: date, until: date
) -> Sequence[SupplierDaily]:
    stmt = select(SupplierDaily).where(
        SupplierDaily.supplier_id == supplier_id, SupplierDaily.day.between(since, until)
    )
    return (await session.scalars(stmt)).all()


def _supplier_scope(
    supplier_id: uuid.UUID, since: date, until: date, product_id: uuid.UUID | None
) -> tuple[Any, Any, tuple[Any, ...]]:
    """Where a supplier's per-product figures come from: its product rollup (rows of a product
    kept together), or, for one product's shops, the sales rollup through its product index."""
    if product_id is None:
        t: Any = SupplierProductDaily
        return t, t.product_id, (t.supplier_id == supplier_id, t.day.between(since, until))
    return (
        SalesDaily,
        SalesDaily.shop_id,
        (
            SalesDaily.product_id == product_id,
            SalesDaily.day.between(since, until),
            SalesDaily.supplier_id == supplier_id,
        ),
    )


async def product_ranking(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    since: date,
    until: date,
    *,
    product_id: uuid.UUID | None,
    sort: str,
    limit: int | None,
) -> Sequence[Any]:
    """(key, orders, units, refunded units) per product of the supplier (or, for one product,
    per shop that sold it), ranked by `sort` in the database."""
    table, key, scope = _supplier_scope(supplier_id, since, until, product_id)
    sums = {
        "orders": func.sum(table.orders),
        "units": func.sum(table.units),
        "refunded_units": func.sum(table.refunded_units),
    }
    stmt = select(key, *sums.values()).where(*scope).group_by(key).order_by(sums[sort].desc(), key)
    if limit is not None:
        stmt = stmt.limit(limit)
    return (await session.execute(stmt)).all()


async def product_money(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    since: date,
    until: date,
    *,
    product_id: uuid.UUID | None,
    keys: Sequence[uuid.UUID] | None,
) -> Sequence[Any]:
    """(key, currency, GMV, sales, refunded, fee) of the keys given (every key: None): per
    product, or per shop of one product."""
    table, key, scope = _supplier_scope(supplier_id, since, until, product_id)
    stmt = select(
        key,
        table.currency,
        func.sum(table.gmv_minor),
        func.sum(table.sales_minor),
        func.sum(table.refunded_minor),
        func.sum(table.platform_fee_minor),
    ).where(*scope)
    if keys is not None:
        stmt = stmt.where(key.in_(keys))
    return (await session.execute(stmt.group_by(key, table.currency))).all()


async def shops_selling(
    session: AsyncSession, product_ids: Sequence[uuid.UUID], since: date, until: date
) -> dict[uuid.UUID, int]:
    """How many shops sold each product in the range, off ix_sales_daily_product_day."""
    stmt = (
        select(SalesDaily.product_id, func.count(distinct(SalesDaily.shop_id)))
        .where(SalesDaily.product_id.in_(product_ids), SalesDaily.day.between(since, until))
        .group_by(SalesDaily.product_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(stmt)}


async def shops_carrying(
    session: AsyncSession, product_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    stmt = (
        select(ShopProduct.product_id, func.count())
        .where(ShopProduct.product_id.in_(product_ids))
        .group_by(ShopProduct.product_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(stmt)}


async def shop_names(
    session: AsyncSession, shop_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    stmt = select(Shop.id, Shop.name, Shop.slug).where(Shop.id.in_(shop_ids))
    return {row[0]: (row[1], row[2]) for row in await session.execute(stmt)}


async def product_of_supplier(
    session: AsyncSession, supplier_id: uuid.UUID, product_id: uuid.UUID
) -> bool:
    stmt = select(Product.id).where(Product.id == product_id, Product.supplier_id == supplier_id)
    return await session.scalar(stmt) is not None


async def variants_page(
    session: AsyncSession, supplier_id: uuid.UUID, after_sku: str | None, limit: int
) -> Sequence[Variant]:
    """A page of the supplier's variants in SKU order, off its (supplier_id, sku) key."""
    stmt = select(Variant).where(Variant.supplier_id == supplier_id)
    if after_sku is not None:
        stmt = stmt.where(Variant.sku > after_sku)
    return (await session.scalars(stmt.order_by(Variant.sku).limit(limit))).all()


async def variant_units(
    session: AsyncSession, variant_ids: Sequence[uuid.UUID], since: date, until: date
) -> dict[uuid.UUID, int]:
    """Units sold and kept per variant over the days."""
    stmt = (
        select(
            VariantDaily.variant_id,
            func.sum(VariantDaily.units - VariantDaily.refunded_units),
        )
        .where(VariantDaily.variant_id.in_(variant_ids), VariantDaily.day.between(since, until))
        .group_by(VariantDaily.variant_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(stmt)}


async def platform_days(
    session: AsyncSession, since: date, until: date
) -> tuple[Sequence[PlatformDaily], Sequence[PlatformSalesDaily]]:
    counts = select(PlatformDaily).where(PlatformDaily.day.between(since, until))
    sales = select(PlatformSalesDaily).where(PlatformSalesDaily.day.between(since, until))
    return (await session.scalars(counts)).all(), (await session.scalars(sales)).all()
