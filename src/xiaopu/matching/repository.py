"""Queries for reading recommendations and for suppliers' invitations (the nightly job's SQL is
in compute.py). Each read starts from the caller's scope: a shop's own rows, or a product of
the calling supplier."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Exists, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.models import (
    Category,
    Invitation,
    InvitationStatus,
    Product,
    ProductStatus,
    RecommendedShop,
    Shop,
    ShopProduct,
    ShopRecommendation,
    Supplier,
    SupplierStatus,
    Variant,
)


def _in_stock(product_id: Any) -> Exists:
    return exists().where(Variant.product_id == product_id, Variant.stock > 0)


def _carried(shop_id: Any, product_id: Any) -> Exists:
    return exists().where(ShopProduct.shop_id == shop_id, ShopProduct.product_id == product_id)


@dataclass(frozen=True, slots=True)
class ProductRow:
    recommendation: ShopRecommendation
    title: str
    image_urls: list[str]
    supplier_id: uuid.UUID
    min_price_minor: int
    currency: str | None


async def recommendations(
    session: AsyncSession, shop_id: uuid.UUID, after_rank: int, limit: int
) -> list[ProductRow]:
    """The shop's recommendations ranked after `after_rank`, leaving out what changed since
    the job ran: products off sale or out of stock, and products the shop picked since."""
    currency = (
        select(Variant.currency)
        .where(Variant.product_id == Product.id)
        .order_by(Variant.price_minor, Variant.id)
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        select(
            ShopRecommendation,
            Product.title,
            Product.image_urls,
            Product.supplier_id,
            Product.min_price_minor,
            currency,
        )
        .join(Product, Product.id == ShopRecommendation.product_id)
        .join(Supplier, Supplier.id == Product.supplier_id)
        .where(
            ShopRecommendation.shop_id == shop_id,
            ShopRecommendation.rank > after_rank,
            Product.status == ProductStatus.active,
            Supplier.status == SupplierStatus.active,
            _in_stock(Product.id),
            ~_carried(shop_id, Product.id),
        )
        .order_by(ShopRecommendation.rank)
        .limit(limit)
    )
    rows = (await session.execute(stmt)).all()
    return [ProductRow(r[0], r[1], list(r[2] or []), r[3], r[4], r[5]) for r in rows]


async def category_names(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Category.id, Category.name_en).where(Category.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


async def supplier_product(
    session: AsyncSession, supplier_id: uuid.UUID, product_id: uuid.UUID
) -> Product | None:
    return await session.scalar(
        select(Product).where(Product.id == product_id, Product.supplier_id == supplier_id)
    )


@dataclass(frozen=True, slots=True)
class ShopRow:
    recommended: RecommendedShop
    name: str
    slug: str
    invitation: InvitationStatus | None


async def recommended_shops(
    session: AsyncSession,
    product_id: uuid.UUID,
    category_id: str,
    band: int,
    after_rank: int,
    limit: int,
) -> list[ShopRow]:
    """The shops of the product's category and price band ranked after `after_rank`, but those
    already carrying the product, with any invitation to it they have."""
    stmt = (
        select(RecommendedShop, Shop.name, Shop.slug, Invitation.status)
        .join(Shop, Shop.id == RecommendedShop.shop_id)
        .outerjoin(
            Invitation,
            and_(Invitation.shop_id == Shop.id, Invitation.product_id == product_id),
        )
        .where(
            RecommendedShop.category_id == category_id,
            RecommendedShop.price_band == band,
            RecommendedShop.rank > after_rank,
            ~_carried(Shop.id, product_id),
        )
        .order_by(RecommendedShop.rank)
        .limit(limit)
    )
    return [ShopRow(r[0], r[1], r[2], r[3]) for r in (await session.execute(stmt)).all()]


async def is_recommended(
    session: AsyncSession, shop_id: uuid.UUID, category_id: str, band: int
) -> bool:
    found = await session.scalar(
        select(func.count()).where(
            RecommendedShop.category_id == category_id,
            RecommendedShop.price_band == band,
            RecommendedShop.shop_id == shop_id,
        )
    )
    return bool(found)


async def carries(session: AsyncSession, shop_id: uuid.UUID, product_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(_carried(shop_id, product_id))))


async def invitation_to(
    session: AsyncSession, product_id: uuid.UUID, shop_id: uuid.UUID
) -> Invitation | None:
    return await session.scalar(
        select(Invitation).where(Invitation.product_id == product_id, Invitation.shop_id == shop_id)
    )


async def shop_invitation(
    session: AsyncSession, shop_id: uuid.UUID, invitation_id: uuid.UUID
) -> Invitation | None:
    return await session.scalar(
        select(Invitation)
        .where(Invitation.id == invitation_id, Invitation.shop_id == shop_id)
        .with_for_update()
    )


@dataclass(frozen=True, slots=True)
class InvitationRow:
    invitation: Invitation
    title: str
    image_urls: list[str]
    supplier_name: str


async def shop_invitations(
    session: AsyncSession,
    shop_id: uuid.UUID,
    status: InvitationStatus | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[InvitationRow]:
    stmt = (
        select(Invitation, Product.title, Product.image_urls, Supplier.name)
        .join(Product, Product.id == Invitation.product_id)
        .join(Supplier, Supplier.id == Invitation.supplier_id)
        .where(Invitation.shop_id == shop_id)
    )
    if status is not None:
        stmt = stmt.where(Invitation.status == status)
    if before is not None:
        stmt = stmt.where(Invitation.id < before)
    stmt = stmt.order_by(Invitation.id.desc()).limit(limit)
    return [
        InvitationRow(r[0], r[1], list(r[2] or []), r[3])
        for r in (await session.execute(stmt)).all()
    ]


async def invitation_rows(
    session: AsyncSession, invitations: Sequence[Invitation]
) -> list[InvitationRow]:
    """The product and supplier beside each of these invitations."""
    if not invitations:
        return []
    rows = await session.execute(
        select(Product.id, Product.title, Product.image_urls, Supplier.name)
        .join(Supplier, Supplier.id == Product.supplier_id)
        .where(Product.id.in_({i.product_id for i in invitations}))
    )
    by_product = {r[0]: (r[1], list(r[2] or []), r[3]) for r in rows}
    return [InvitationRow(i, *by_product[i.product_id]) for i in invitations]
