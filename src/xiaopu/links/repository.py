"""Queries for share links, what the redirect needs to know about one, and link stats."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.campaigns.service import Showing
from xiaopu.db import read_connection
from xiaopu.kit.money import shop_price
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import (
    LinkDailyStats,
    ProductStatus,
    ShareLink,
    SupplierStatus,
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
    # The product's campaigns the shop signed up to, not ended when loaded (links/redirect.py
    # loads them with the target): the preview works out from their times, when it renders,
    # whether one is warming up or live.
    campaigns: tuple[Showing, ...] = ()
    # Filled in by the redirect's cache (links/redirect.py) for its hot path: the token's fixed
    # tail (link and shop ids as bytes), a click row's id columns and the location on either
    # side of the token.
    token_ids: bytes = b""
    copy_ids: bytes = b""  # a click's link, shop and product columns, as COPY BINARY fields
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


# Every field the redirect and the preview need, in one statement: the cheapest variant
# gives the shown price, and the joins tell whether the link still leads anywhere.
_TARGET = """
SELECT l.id, l.shop_id, l.product_id, l.disabled_at, s.name, s.slug,
       p.id AS found_product, p.title, p.image_urls, p.status, p.markup_ceiling_bps,
       su.status AS supplier_status, sp.markup_bps, c.price_minor, c.currency
FROM share_links l
JOIN shops s ON s.id = l.shop_id
LEFT JOIN products p ON p.id = l.product_id
LEFT JOIN suppliers su ON su.id = p.supplier_id
LEFT JOIN shop_products sp ON sp.product_id = p.id AND sp.shop_id = l.shop_id
LEFT JOIN LATERAL (
    SELECT v.price_minor, v.currency FROM variants v
    WHERE v.product_id = l.product_id ORDER BY v.price_minor LIMIT 1
) c ON true
WHERE l.code = $1
"""


async def target(session: AsyncSession, code: str) -> LinkTarget | None:
    """What the redirect needs for a code, in one query (caches refill it for busy links).
    Run on the driver's connection: a cache refill under load should cost a round trip, not
    a statement build and compile."""
    raw = await read_connection(session)
    row = await raw.fetchrow(_TARGET, code)
    if row is None:
        return None
    title, image, price, currency = row["name"], None, None, None
    disabled = row["disabled_at"] is not None
    if row["product_id"] is not None:
        if row["found_product"] is None:
            disabled = True
        else:
            title = row["title"]
            images = row["image_urls"]
            image = images[0] if images else None
            if row["price_minor"] is not None:
                price = shop_price(
                    row["price_minor"], row["markup_bps"] or 0, row["markup_ceiling_bps"]
                )
                currency = row["currency"]
            if (
                row["status"] != ProductStatus.active.value
                or row["supplier_status"] != SupplierStatus.active.value
                or row["markup_bps"] is None
            ):
                # Off sale or no longer in the shop: the link leads nowhere useful.
                disabled = True
    return LinkTarget(
        link_id=row["id"],
        shop_id=row["shop_id"],
        product_id=row["product_id"],
        disabled=disabled,
        shop_name=row["name"],
        shop_slug=row["slug"],
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
