"""Matching: reading the recommendations the nightly job computed, with their reasons, and
suppliers' invitations to recommended shops (sent, listed, accepted or dismissed)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.catalogue import service as catalogue
from xiaopu.catalogue.service import ProductNotFound
from xiaopu.config import Settings
from xiaopu.errors import Conflict, InvalidCursor, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import Page, PageParams, encode_cursor
from xiaopu.matching import compute, formula, repository
from xiaopu.matching.schemas import (
    InvitationOut,
    Reason,
    ReasonCode,
    RecommendedProduct,
    RecommendedShopOut,
    ShopInvitationOut,
    ShopProfile,
)
from xiaopu.models import Invitation, InvitationStatus, RecommendedShop, ShopRecommendation
from xiaopu.shops import service as shops
from xiaopu.shops.schemas import SelectionAdd
from xiaopu.webhooks.catalogue import EventType
from xiaopu.webhooks.service import emit

log = structlog.get_logger(__name__)


class RecommendedShopNotFound(NotFound):
    code = "recommended_shop_not_found"
    title = "The shop is not among this product's recommended shops"


class InvitationNotFound(NotFound):
    code = "invitation_not_found"
    title = "Invitation not found"


class ProductNotOnSale(Conflict):
    code = "product_not_on_sale"
    title = "The product is not on sale (inactive, or its supplier is not active)"


class AlreadyCarried(Conflict):
    code = "already_in_shop"
    title = "The shop already carries this product"


class AlreadyInvited(Conflict):
    code = "already_invited"
    title = "This shop was already invited to carry this product"


class InvitationDecided(Conflict):
    code = "invitation_decided"
    title = "The invitation was already decided the other way"


# The job -------------------------------------------------------------------------------------


async def compute_all(
    session: AsyncSession, settings: Settings, now: datetime | None = None
) -> compute.Result:
    """Rewrite every shop's recommendations and every cell's recommended shops from the last
    WINDOW_DAYS local days, in the session's transaction."""
    result = await compute.run(session, settings.zone, now or utcnow())
    log.info(
        "matching_computed",
        window_start=result.window.start.isoformat(),
        window_end=result.window.end.isoformat(),
        shops=result.shops,
        products=result.products,
        recommendations=result.recommendations,
        recommended_shops=result.recommended_shops,
    )
    return result


# Reasons -------------------------------------------------------------------------------------


def _percent(bps: int) -> str:
    return f"{bps / 100:.1f}%"


def _band_text(band: int) -> str:
    low, high = formula.band_bounds(band)
    if high is None:
        return f"{low // 100:,} or more"
    if low == 0:
        return f"under {high // 100:,}"
    return f"{low // 100:,}–{high // 100:,}"


def _band_figures(band: int) -> dict[str, int]:
    low, high = formula.band_bounds(band)
    figures = {"band": band, "band_min_minor": low}
    if high is not None:
        figures["band_below_minor"] = high
    return figures


def product_reasons(r: ShopRecommendation, categories: dict[str, str]) -> list[Reason]:
    category = categories.get(r.category_id, r.category_id)
    segment = categories.get(r.segment_category_id, r.segment_category_id)
    days = r.window_days
    return [
        Reason(
            code=ReasonCode.category_affinity,
            figures={
                "units": r.category_units,
                "clicks": r.category_clicks,
                "share_bps": r.category_share_bps,
                "days": days,
            },
            text=f"Your buyers ordered {r.category_units} {category} products and opened "
            f"{r.category_clicks} {category} links in {days} days "
            f"({_percent(r.category_share_bps)} of your shop's interest)",
        ),
        Reason(
            code=ReasonCode.price_band_affinity,
            figures={
                **_band_figures(r.price_band),
                "units": r.band_units,
                "clicks": r.band_clicks,
                "share_bps": r.band_share_bps,
                "days": days,
            },
            text=f"Priced {_band_text(r.price_band)}, where "
            f"{_percent(r.band_share_bps)} of your shop's interest was in {days} days",
        ),
        Reason(
            code=ReasonCode.similar_shops,
            figures={
                "shops": r.peer_shops,
                "of_shops": r.segment_shops,
                "share_bps": r.peer_share_bps,
                "days": days,
            },
            text=f"Sold by {r.peer_shops} of the {r.segment_shops} other shops like yours "
            f"(whose buyers favour {segment}) in {days} days",
        ),
        Reason(
            code=ReasonCode.conversion,
            figures={
                "conversion_bps": r.conversion_bps,
                "orders": r.orders,
                "visitors": r.visitors,
                "days": days,
            },
            text=f"Converts at {_percent(r.conversion_bps)} across shops "
            f"({r.orders} orders from {r.visitors} visitors in {days} days)",
        ),
        Reason(
            code=ReasonCode.return_rate,
            figures={
                "return_rate_bps": r.return_rate_bps,
                "returned_units": r.returned_units,
                "units": r.units,
                "days": days,
            },
            text=f"{_percent(r.return_rate_bps)} return rate "
            f"({r.returned_units} of {r.units} units returned in {days} days)",
        ),
        Reason(
            code=ReasonCode.commission,
            figures={"commission_bps": r.commission_bps},
            text=f"Commission up to {_percent(r.commission_bps)}",
        ),
        Reason(
            code=ReasonCode.in_stock,
            figures={"stock": r.stock},
            text=f"In stock: {r.stock} units",
        ),
    ]


def shop_reasons(s: RecommendedShop, category: str) -> list[Reason]:
    days = s.window_days
    return [
        Reason(
            code=ReasonCode.category_affinity,
            figures={
                "units": s.category_units,
                "clicks": s.category_clicks,
                "share_bps": s.category_share_bps,
                "days": days,
            },
            text=f"Its buyers ordered {s.category_units} {category} products and opened "
            f"{s.category_clicks} {category} links in {days} days "
            f"({_percent(s.category_share_bps)} of its interest)",
        ),
        Reason(
            code=ReasonCode.price_band_affinity,
            figures={**_band_figures(s.price_band), "share_bps": s.band_share_bps, "days": days},
            text=f"{_percent(s.band_share_bps)} of its interest is at {_band_text(s.price_band)}",
        ),
        Reason(
            code=ReasonCode.sales_volume,
            figures={
                "activity": s.activity,
                "units": s.units,
                "visitors": s.visitors,
                "orders": s.orders,
                "days": days,
            },
            text=f"{s.units} units sold in {s.orders} orders to an audience of {s.visitors} "
            f"visitors in {days} days",
        ),
        Reason(
            code=ReasonCode.return_rate,
            figures={
                "return_rate_bps": s.return_rate_bps,
                "returned_units": s.returned_units,
                "units": s.units,
                "days": days,
            },
            text=f"{_percent(s.return_rate_bps)} of its units came back in {days} days",
        ),
    ]


# Reads ---------------------------------------------------------------------------------------


def _after_rank(page: PageParams) -> int:
    values = page.decode()
    if not values:
        return 0
    if len(values) != 1 or not isinstance(values[0], int) or values[0] < 0:
        raise InvalidCursor()
    return values[0]


async def recommendations(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[RecommendedProduct]:
    shop = await shops.shop_of(session, account_id)
    rows = await repository.recommendations(session, shop.id, _after_rank(page), page.limit + 1)
    cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        cursor = encode_cursor([rows[-1].recommendation.rank])
    names = await repository.category_names(
        session,
        {r.recommendation.category_id for r in rows}
        | {r.recommendation.segment_category_id for r in rows},
    )
    items = [
        RecommendedProduct(
            rank=row.recommendation.rank,
            score=row.recommendation.score,
            product_id=row.recommendation.product_id,
            supplier_id=row.supplier_id,
            title=row.title,
            image_url=row.image_urls[0] if row.image_urls else None,
            category_id=row.recommendation.category_id,
            price_band=row.recommendation.price_band,
            min_price_minor=row.min_price_minor,
            currency=row.currency,
            reasons=product_reasons(row.recommendation, names),
            computed_at=row.recommendation.computed_at,
        )
        for row in rows
    ]
    return Page[RecommendedProduct](items=items, next_cursor=cursor)


async def recommended_shops(
    session: AsyncSession, supplier_id: uuid.UUID, product_id: uuid.UUID, page: PageParams
) -> Page[RecommendedShopOut]:
    product = await repository.supplier_product(session, supplier_id, product_id)
    if product is None:
        raise ProductNotFound()
    band = formula.band_of(product.min_price_minor)
    rows = await repository.recommended_shops(
        session, product.id, product.category_id, band, _after_rank(page), page.limit + 1
    )
    cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        cursor = encode_cursor([rows[-1].recommended.rank])
    names = await repository.category_names(session, {product.category_id})
    category = names.get(product.category_id, product.category_id)
    items = []
    for row in rows:
        s = row.recommended
        items.append(
            RecommendedShopOut(
                rank=s.rank,
                score=s.score,
                shop_id=s.shop_id,
                name=row.name,
                slug=row.slug,
                profile=ShopProfile(
                    window_days=s.window_days,
                    visitors=s.visitors,
                    orders=s.orders,
                    units=s.units,
                    returned_units=s.returned_units,
                    conversion_bps=s.conversion_bps,
                    return_rate_bps=s.return_rate_bps,
                    category_units=s.category_units,
                    category_clicks=s.category_clicks,
                    category_share_bps=s.category_share_bps,
                    band_share_bps=s.band_share_bps,
                    orders_7d=s.orders_7d,
                    last_order_at=s.last_order_at,
                ),
                reasons=shop_reasons(s, category),
                invitation_status=row.invitation,
                computed_at=s.computed_at,
            )
        )
    return Page[RecommendedShopOut](items=items, next_cursor=cursor)


# Invitations ---------------------------------------------------------------------------------


def _supplier_view(invitation: Invitation) -> InvitationOut:
    return InvitationOut.model_validate(invitation)


async def invite(
    session: AsyncSession, supplier_id: uuid.UUID, product_id: uuid.UUID, shop_id: uuid.UUID
) -> InvitationOut:
    """Invite a shop recommended for the product to carry it; the shop is told by the event
    `recommendation.invited` (ids only). One invitation per product and shop, ever."""
    product = await repository.supplier_product(session, supplier_id, product_id)
    if product is None:
        raise ProductNotFound()
    band = formula.band_of(product.min_price_minor)
    if not await repository.is_recommended(session, shop_id, product.category_id, band):
        raise RecommendedShopNotFound()
    if not await catalogue.sellable_products(session, [product.id]):
        raise ProductNotOnSale()
    if await repository.carries(session, shop_id, product.id):
        raise AlreadyCarried()
    existing = await repository.invitation_to(session, product.id, shop_id)
    if existing is not None:
        raise AlreadyInvited(
            extra={"invitation_id": str(existing.id), "invitation_status": str(existing.status)}
        )
    invitation = Invitation(
        supplier_id=supplier_id,
        product_id=product.id,
        shop_id=shop_id,
        status=InvitationStatus.pending,
    )
    try:
        async with session.begin_nested():
            session.add(invitation)
    except IntegrityError as exc:  # a concurrent invitation won
        raise AlreadyInvited() from exc
    await emit(
        session,
        EventType.recommendation_invited,
        shop_id,
        {
            "invitation_id": str(invitation.id),
            "shop_id": str(shop_id),
            "product_id": str(product.id),
            "supplier_id": str(supplier_id),
        },
    )
    return _supplier_view(invitation)


def _shop_view(row: repository.InvitationRow) -> ShopInvitationOut:
    i = row.invitation
    return ShopInvitationOut(
        id=i.id,
        status=i.status,
        product_id=i.product_id,
        title=row.title,
        image_url=row.image_urls[0] if row.image_urls else None,
        supplier_id=i.supplier_id,
        supplier_name=row.supplier_name,
        created_at=i.created_at,
        decided_at=i.decided_at,
    )


async def invitations(
    session: AsyncSession,
    account_id: uuid.UUID,
    status: InvitationStatus | None,
    page: PageParams,
) -> Page[ShopInvitationOut]:
    shop = await shops.shop_of(session, account_id)
    rows = await repository.shop_invitations(
        session, shop.id, status, page.after_id(), page.limit + 1
    )
    cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        cursor = encode_cursor([str(rows[-1].invitation.id)])
    return Page[ShopInvitationOut](items=[_shop_view(r) for r in rows], next_cursor=cursor)


async def _decide(
    session: AsyncSession, account_id: uuid.UUID, invitation_id: uuid.UUID
) -> Invitation:
    shop = await shops.shop_of(session, account_id)
    invitation = await repository.shop_invitation(session, shop.id, invitation_id)
    if invitation is None:
        raise InvitationNotFound()
    return invitation


async def _shop_out(session: AsyncSession, invitation: Invitation) -> ShopInvitationOut:
    (row,) = await repository.invitation_rows(session, [invitation])
    return _shop_view(row)


async def accept(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, invitation_id: uuid.UUID
) -> ShopInvitationOut:
    """Accept an invitation: the product joins the shop's selection (as POST
    /v1/shops/mine/products would add it, with no markup), unless it is there already."""
    invitation = await _decide(session, account_id, invitation_id)
    if invitation.status is InvitationStatus.dismissed:
        raise InvitationDecided("The invitation was dismissed.")
    if invitation.status is InvitationStatus.pending:
        if not await catalogue.sellable_products(session, [invitation.product_id]):
            raise ProductNotOnSale()
        # Picked from the catalogue meanwhile: accepting changes nothing more.
        with contextlib.suppress(shops.AlreadyInShop):
            await shops.add_product(
                session, settings, account_id, SelectionAdd(product_id=invitation.product_id)
            )
        invitation.status = InvitationStatus.accepted
        invitation.decided_at = utcnow()
        await session.flush()
    return await _shop_out(session, invitation)


async def dismiss(
    session: AsyncSession, account_id: uuid.UUID, invitation_id: uuid.UUID
) -> ShopInvitationOut:
    invitation = await _decide(session, account_id, invitation_id)
    if invitation.status is InvitationStatus.accepted:
        raise InvitationDecided("The invitation was accepted.")
    if invitation.status is InvitationStatus.pending:
        invitation.status = InvitationStatus.dismissed
        invitation.decided_at = utcnow()
        await session.flush()
    return await _shop_out(session, invitation)


async def top_shop_ids(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    product_ids: Sequence[uuid.UUID],
    per_product: int,
) -> list[uuid.UUID]:
    """The best-ranked recommended shops of each of the supplier's products, in rank order:
    whom a campaign of these products invites first."""
    found: list[uuid.UUID] = []
    for product_id in product_ids:
        page = await recommended_shops(
            session, supplier_id, product_id, PageParams(limit=per_product, cursor=None)
        )
        found += [item.shop_id for item in page.items]
    return list(dict.fromkeys(found))
