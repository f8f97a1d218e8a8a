"""Queries for share links, what the redirect needs to know about one, and link stats."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, func, select
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
    row = (
        await session.execute(
            select(ShareLink, Shop)
            .join(Shop, Shop.id == ShareLink.shop_id)
            .where(ShareLink.code == code)
        )
    ).one_or_none()
    if row is None:
        return None
    share, shop = row
    title, image, price, currency = shop.name, None, None, None
    disabled = share.disabled_at is not None
    if share.product_id is not None:
        product_row = (
            await session.execute(
                select(Product, ShopProduct.markup_bps, Supplier.status)
                .join(Supplier, Supplier.id == Product.supplier_id)
                .outerjoin(
                    ShopProduct,
                    (ShopProduct.product_id == Product.id) & (ShopProduct.shop_id == shop.id),
                )
                .where(Product.id == share.product_id)
            )
        ).one_or_none()
        if product_row is None:
            disabled = True
        else:
            product, markup_bps, supplier_status = product_row
            title = product.title
            image = product.image_urls[0] if product.image_urls else None
            cheapest = (
                await session.execute(
                    select(Variant.price_minor, Variant.currency)
                    .where(Variant.product_id == product.id)
                    .order_by(Variant.price_minor)
                    .limit(1)
                )
            ).one_or_none()
            if cheapest is not None:
                price = shop_price(cheapest[0], markup_bps or 0, product.markup_ceiling_bps)
                currency = cheapest[1]
            if (
                product.status is not ProductStatus.active
                or supplier_status is not SupplierStatus.active
                or markup_bps is None
            ):
                # Off sale or no longer in the shop: the link leads nowhere useful.
                disabled = True
    return LinkTarget(
        link_id=share.id,
        shop_id=shop.id,
        product_id=share.product_id,
        disabled=disabled,
        shop_name=shop.name,
        shop_slug=shop.slug,
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
