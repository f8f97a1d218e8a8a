"""Queries for categories, a supplier's products and variants, and the sellable catalogue."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

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


def in_category(stmt: Select[Product], category_id: str) -> Select[Product]:
    return stmt.where(
        or_(
            Product.category_id == category_id,
            Product.category_id.startswith(f"{category_id}.", autoescape=True),
        )
    )


def matching(stmt: Select[Product], tsquery: str) -> Select[Product]:
    return stmt.where(Product.search.op("@@")(func.to_tsquery("simple", tsquery)))


def after(
    stmt: Select[Product],
    key: InstrumentedAttribute[int] | None,
    key_value: int | None,
    last_id: uuid.UUID,
    descending: bool,
) -> Select[Product]:
    """Keyset continuation after (key_value, last_id), ties broken by id descending."""
    if key is None or key_value is None:
        return stmt.where(Product.id < last_id)
    beyond = key < key_value if descending else key > key_value
    return stmt.where(or_(beyond, and_(key == key_value, Product.id < last_id)))


async def lock_for_sale(
    session: AsyncSession, variant_ids: Collection[uuid.UUID]
) -> Sequence[tuple[Variant, Product, Supplier]]:
    """Variants with their products and suppliers, the variants locked in id order so that
    concurrent checkouts queue on shared variants instead of deadlocking."""
    stmt = (
        select(Variant, Product, Supplier)
        .join(Product, Product.id == Variant.product_id)
        .join(Supplier, Supplier.id == Product.supplier_id)
        .where(Variant.id.in_(variant_ids))
        .order_by(Variant.id)
        .with_for_update(of=Variant)
    )
    return [(v, p, s) for v, p, s in (await session.execute(stmt)).all()]


async def lock_variants(
    session: AsyncSession, variant_ids: Collection[uuid.UUID]
) -> Sequence[Variant]:
    stmt = select(Variant).where(Variant.id.in_(variant_ids)).order_by(Variant.id).with_for_update()
    return (await session.scalars(stmt)).all()
