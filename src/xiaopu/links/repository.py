"""Queries for share links, what the redirect needs to know about one, and link stats."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.money import shop_price
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import (
    LinkDailyStats,
    Product,
    ProductStatus,
    ShareLink,
    Shop,
    ShopProduct,
    Supplier,
    SupplierStatus,
    Variant,
)


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """Everything the redirect and the preview page need, cached per code."""

    link_id: uuid.UUID
    shop_id: uuid.UUID
    product_id: uuid.UUID | None
    disabled: bool
    shop_name: str
    shop_slug: str
    title: str
    image_url: str | None
    shop_price_minor: int | None = None  # of the cheapest variant, markup included
    currency: str | None = None
    # Filled in by the redirect's cache (links/redirect.py) for its hot path: the token's fixed
    # tail (link and shop ids as bytes) and the location on either side of the token.
    token_ids: bytes = b""
    location_head: bytes = b""
    location_tail: bytes = b""


def _shop_links(shop_id: uuid.UUID) -> Select[ShareLink]:
    return select(ShareLink).where(ShareLink.shop_id == shop_id)


async def code_taken(session: AsyncSession, code: str) -> bool:
    return await session.scalar(select(ShareLink.id).where(ShareLink.code == code)) is not None


async def link(session: AsyncSession, shop_id: uuid.UUID, link_id: uuid.UUID) -> ShareLink | None:
    return await session.scalar(_shop_links(shop_id).where(ShareLink.id == link_id))


async def links(session: AsyncSession, shop_id: uuid.UUID, page: PageParams) -> Sequence[ShareLink]:
    return (await session.scalars(newest_first(_shop_links(shop_id), ShareLink.id, page))).all()


async def target(session: AsyncSession, code: str) -> LinkTarget | None:
    """What the redirect needs for a code, in one query (caches refill it for busy links)."""
    cheapest = (
        select(Variant.price_minor, Variant.currency)
        .where(Variant.product_id == ShareLink.product_id)
        .order_by(Variant.price_minor)
        .limit(1)
        .lateral()
    )
    stmt = (
        select(
            ShareLink.id,
            ShareLink.shop_id,
            ShareLink.product_id,
            ShareLink.disabled_at,
            Shop.name,
            Shop.slug,
            Product.id.label("found_product"),
            Product.title,
            Product.image_urls,
            Product.status,
            Product.markup_ceiling_bps,
            Supplier.status.label("supplier_status"),
            ShopProduct.markup_bps,
            cheapest.c.price_minor,
            cheapest.c.currency,
        )
        .join(Shop, Shop.id == ShareLink.shop_id)
        .outerjoin(Product, Product.id == ShareLink.product_id)
        .outerjoin(Supplier, Supplier.id == Product.supplier_id)
        .outerjoin(
            ShopProduct,
            (ShopProduct.product_id == Product.id) & (ShopProduct.shop_id == ShareLink.shop_id),
        )
        .outerjoin(cheapest, true())
        .where(ShareLink.code == code)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return None
    title, image, price, currency = row.name, None, None, None
    disabled = row.disabled_at is not None
    if row.product_id is not None:
        if row.found_product is None:
            disabled = True
        else:
            title = row.title
            image = row.image_urls[0] if row.image_urls else None
            if row.price_minor is not None:
                price = shop_price(row.price_minor, row.markup_bps or 0, row.markup_ceiling_bps)
                currency = row.currency
            if (
                row.status is not ProductStatus.active
                or row.supplier_status is not SupplierStatus.active
                or row.markup_bps is None
            ):
                # Off sale or no longer in the shop: the link leads nowhere useful.
                disabled = True
    return LinkTarget(
        link_id=row.id,
        shop_id=row.shop_id,
        product_id=row.product_id,
        disabled=disabled,
        shop_name=row.name,
        shop_slug=row.slug,
        title=title,
        image_url=image,
        shop_price_minor=price,
        currency=currency,
    )


async def daily_stats(
    session: AsyncSession, link_ids: Sequence[uuid.UUID], since: date
) -> Sequence[LinkDailyStats]:
    stmt = (
        select(LinkDailyStats)
        .where(LinkDailyStats.link_id.in_(link_ids), LinkDailyStats.day >= since)
        .order_by(LinkDailyStats.day, LinkDailyStats.link_id)
    )
    return (await session.scalars(stmt)).all()


async def totals(
    session: AsyncSession, link_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    stmt = (
        select(
            LinkDailyStats.link_id,
            func.sum(LinkDailyStats.clicks),
            func.sum(LinkDailyStats.unique_visitors),
        )
        .where(LinkDailyStats.link_id.in_(link_ids))
        .group_by(LinkDailyStats.link_id)
    )
    return {lid: (int(c), int(u)) for lid, c, u in (await session.execute(stmt)).all()}
