"""Share links for a shop: create, list, disable, share kits, QR codes, stats and attribution."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta, tzinfo

import segno
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.config import Settings
from xiaopu.errors import NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.money import display
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.links import repository, tokens
from xiaopu.links.redirect import PREFIX, new_code
from xiaopu.links.schemas import DailyStat, LinkCreate, LinkOut, LinkStats, ShareKit
from xiaopu.models import ShareLink
from xiaopu.shops import service as shops


class LinkNotFound(NotFound):
    code = "link_not_found"
    title = "Share link not found"


def share_url(settings: Settings, code: str) -> str:
    return f"{settings.public_base_url}{PREFIX}{code}"


def _out(settings: Settings, link: ShareLink, totals: tuple[int, int] = (0, 0)) -> LinkOut:
    return LinkOut(
        id=link.id,
        code=link.code,
        url=share_url(settings, link.code),
        product_id=link.product_id,
        label=link.label,
        disabled=link.disabled_at is not None,
        clicks=totals[0],
        unique_visitors=totals[1],
        created_at=link.created_at,
    )


async def create_link(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, data: LinkCreate
) -> LinkOut:
    shop = await shops.shop_of(session, account_id)
    if data.product_id is not None:
        await shops.require_selected(session, shop.id, data.product_id)
    for _ in range(5):
        link = ShareLink(
            code=new_code(), shop_id=shop.id, product_id=data.product_id, label=data.label
        )
        try:
            async with session.begin_nested():
                session.add(link)
        except IntegrityError:  # a code collision: 59 random bits make this vanishingly rare
            continue
        return _out(settings, link)
    raise RuntimeError("could not find a free share code")


async def _link(session: AsyncSession, account_id: uuid.UUID, link_id: uuid.UUID) -> ShareLink:
    shop = await shops.shop_of(session, account_id)
    link = await repository.link(session, shop.id, link_id)
    if link is None:
        raise LinkNotFound()
    return link


async def list_links(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, page: PageParams
) -> Page[LinkOut]:
    shop = await shops.shop_of(session, account_id)
    rows = await repository.links(session, shop.id, page)
    items, cursor = id_page(rows, page, lambda link: link.id)
    totals = await repository.totals(session, [link.id for link in items])
    return Page[LinkOut](
        items=[_out(settings, link, totals.get(link.id, (0, 0))) for link in items],
        next_cursor=cursor,
    )


async def disable_link(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, link_id: uuid.UUID
) -> LinkOut:
    link = await _link(session, account_id, link_id)
    if link.disabled_at is None:
        link.disabled_at = utcnow()
        await session.flush()
    totals = await repository.totals(session, [link.id])
    return _out(settings, link, totals.get(link.id, (0, 0)))


async def share_kit(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, link_id: uuid.UUID
) -> ShareKit:
    link = await _link(session, account_id, link_id)
    url = share_url(settings, link.code)
    target = await repository.target(session, link.code)
    if (
        target is not None
        and target.product_id is not None
        and target.shop_price_minor is not None
        and target.currency is not None
    ):
        price = display(target.shop_price_minor, target.currency)
        message = f"【{target.shop_name}】{target.title} 仅需 {price}，点击购买 👉 {url}"
    else:
        name = target.shop_name if target else "小铺"
        message = f"来逛逛我的小铺【{name}】，好物推荐 👉 {url}"
    base = f"{settings.public_base_url}/v1/links/{link.code}"
    return ShareKit(
        url=url, qr_svg_url=f"{base}/qr.svg", qr_png_url=f"{base}/qr.png", message=message
    )


async def link_stats(
    session: AsyncSession, account_id: uuid.UUID, link_id: uuid.UUID, days: int, zone: tzinfo
) -> LinkStats:
    link = await _link(session, account_id, link_id)
    since = utcnow().astimezone(zone).date() - timedelta(days=days - 1)
    rows = await repository.daily_stats(session, [link.id], since)
    return LinkStats(
        link_id=link.id,
        days=[
            DailyStat(day=r.day, clicks=r.clicks, unique_visitors=r.unique_visitors) for r in rows
        ],
    )


async def qr_code(
    session: AsyncSession, settings: Settings, code: str, kind: str
) -> tuple[bytes, str]:
    """The QR code of a share URL, as SVG or PNG."""
    if not await repository.code_taken(session, code):
        raise LinkNotFound()
    qr = segno.make(share_url(settings, code), error="m")
    buffer = io.BytesIO()
    if kind == "svg":
        qr.save(buffer, kind="svg", scale=8, border=2)
        return buffer.getvalue(), "image/svg+xml"
    qr.save(buffer, kind="png", scale=8, border=2)
    return buffer.getvalue(), "image/png"


def check_attribution(settings: Settings, token: str) -> tuple[tokens.Attribution, bool]:
    """(attribution, expired). Raises InvalidAttributionToken for a forged or damaged token."""
    attribution = tokens.verify(settings.attribution_key, token)
    window = timedelta(days=settings.attribution_window_days)
    return attribution, attribution.expired(utcnow(), window)
