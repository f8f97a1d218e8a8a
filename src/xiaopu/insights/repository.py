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


async def link_traffic(
    session: AsyncSession, shop_id: uuid.UUID, since: date, until: date, *, by_product: bool
) -> Sequence[Any]:
    """(key, clicks, unique visitors) per link, or per product of the shop's product links."""
    key = LinkDailyStats.product_id if by_product else LinkDailyStats.link_id
    stmt = (
        select(key, func.sum(LinkDailyStats.clicks), func.sum(LinkDailyStats.unique_visitors))
        .where(LinkDailyStats.shop_id == shop_id, LinkDailyStats.day.between(since, until))
        .group_by(key)
    )
    if by_product:
        stmt = stmt.where(LinkDailyStats.product_id.is_not(None))
    return (await session.execute(stmt)).all()


async def shop_sales(
    session: AsyncSession, shop_id: uuid.UUID, since: date, until: date, *, by_product: bool
) -> Sequence[Any]:
    """(key, currency, orders, units, refunded units, GMV, standing earnings) per link (NO_LINK
    for sales through none) or per product."""
    key = SalesDaily.product_id if by_product else SalesDaily.link_id
    stmt = (
        select(
            key,
            SalesDaily.currency,
            func.sum(SalesDaily.orders),
            func.sum(SalesDaily.units),
            func.sum(SalesDaily.refunded_units),
            func.sum(SalesDaily.gmv_minor),
            func.sum(_STANDING),
        )
        .where(SalesDaily.shop_id == shop_id, SalesDaily.day.between(since, until))
        .group_by(key, SalesDaily.currency)
    )
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


def _supplier_sales(supplier_id: uuid.UUID, since: date, until: date) -> Any:
    return (
        func.sum(SalesDaily.orders),
        func.sum(SalesDaily.units),
        func.sum(SalesDaily.refunded_units),
        func.sum(SalesDaily.gmv_minor),
        func.sum(SalesDaily.sales_minor),
        func.sum(SalesDaily.refunded_minor),
        func.sum(SalesDaily.platform_fee_minor),
    ), (SalesDaily.supplier_id == supplier_id, SalesDaily.day.between(since, until))


async def product_sales(
    session: AsyncSession, supplier_id: uuid.UUID, since: date, until: date
) -> Sequence[Any]:
    """(product, currency, orders, units, refunded units, GMV, sales, refunded, fee, shops
    selling) per product and currency, off ix_sales_daily_supplier_id."""
    sums, scope = _supplier_sales(supplier_id, since, until)
    stmt = (
        select(
            SalesDaily.product_id,
            SalesDaily.currency,
            *sums,
            func.count(distinct(SalesDaily.shop_id)),
        )
        .where(*scope)
        .group_by(SalesDaily.product_id, SalesDaily.currency)
    )
    return (await session.execute(stmt)).all()


async def shops_carrying(
    session: AsyncSession, product_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    stmt = (
        select(ShopProduct.product_id, func.count())
        .where(ShopProduct.product_id.in_(product_ids))
        .group_by(ShopProduct.product_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(stmt)}


async def shops_selling(
    session: AsyncSession, supplier_id: uuid.UUID, product_id: uuid.UUID, since: date, until: date
) -> Sequence[Any]:
    """(shop, currency, orders, units, refunded units, GMV, sales, refunded, fee) per shop that
    sold the product in the range."""
    sums, scope = _supplier_sales(supplier_id, since, until)
    stmt = (
        select(SalesDaily.shop_id, SalesDaily.currency, *sums)
        .where(*scope, SalesDaily.product_id == product_id)
        .group_by(SalesDaily.shop_id, SalesDaily.currency)
    )
    return (await session.execute(stmt)).all()


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
