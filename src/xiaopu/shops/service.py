"""One-click shops, level promotion, product selection with markup, and the public shop view."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slugify import slugify
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.catalogue import service as catalogue
from xiaopu.catalogue.search import query_expression
from xiaopu.config import Settings
from xiaopu.db import Read
from xiaopu.errors import AppError, Conflict, NotFound
from xiaopu.kit.money import shop_price
from xiaopu.kit.pagination import Page, PageParams, encode_cursor
from xiaopu.models import Account, Product, Shop, ShopLevel, ShopProduct
from xiaopu.organisations import service as organisations
from xiaopu.shops import repository
from xiaopu.shops.repository import CheckoutShop as CheckoutShop
from xiaopu.shops.schemas import (
    RESERVED_SLUGS,
    PublicProduct,
    PublicShop,
    PublicVariant,
    SelectionAdd,
    SelectionOut,
    SelectionUpdate,
    ShopCreate,
    ShopOut,
    ShopUpdate,
)
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType


class ShopNotFound(NotFound):
    code = "shop_not_found"
    title = "Shop not found"


class ShopExists(Conflict):
    code = "shop_exists"
    title = "You already have a shop"


class SlugTaken(Conflict):
    code = "slug_taken"
    title = "Another shop has this slug"


class ShopProductLimit(Conflict):
    code = "shop_product_limit"
    title = "A trial shop carries a limited number of products"


class AlreadyInShop(Conflict):
    code = "already_in_shop"
    title = "The product is already in your shop"


class NotInShop(NotFound):
    code = "not_in_shop"
    title = "The product is not in your shop"


class MarkupAboveCeiling(AppError):
    status = 422
    code = "markup_above_ceiling"
    title = "The markup is above what the supplier allows"


def _limit(shop: Shop, settings: Settings) -> int | None:
    return settings.trial_shop_product_limit if shop.level is ShopLevel.trial else None


async def _out(session: AsyncSession, shop: Shop, settings: Settings) -> ShopOut:
    return ShopOut(
        id=shop.id,
        name=shop.name,
        slug=shop.slug,
        blurb=shop.blurb,
        level=shop.level,
        completed_sales=shop.completed_sales,
        organisation_id=shop.organisation_id,
        product_limit=_limit(shop, settings),
        product_count=await repository.product_count(session, shop.id),
        created_at=shop.created_at,
    )


async def _free_slug(session: AsyncSession, name: str) -> str:
    # Chinese names become pinyin ("小林的小铺" -> "xiao-lin-de-xiao-pu").
    base = slugify(name, max_length=40, word_boundary=True) or "shop"
    if (
        len(base) >= 3
        and base not in RESERVED_SLUGS
        and not await repository.slug_taken(session, base)
    ):
        return base
    for _ in range(10):
        candidate = f"{base}-{secrets.token_hex(3)}"
        if not await repository.slug_taken(session, candidate):
            return candidate
    return f"shop-{secrets.token_hex(8)}"


async def open_shop(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, data: ShopCreate
) -> ShopOut:
    if await repository.by_owner(session, account_id) is not None:
        raise ShopExists()
    account = await session.get(Account, account_id)
    owner_name = (account.display_name if account else None) or "掌柜"
    name = data.name or f"{owner_name[:61]}的小铺"  # fits the 64-character column
    slug = data.slug or await _free_slug(session, name)
    if data.slug and await repository.slug_taken(session, data.slug):
        raise SlugTaken()
    shop = Shop(owner_account_id=account_id, name=name, slug=slug, blurb=data.blurb)
    try:
        async with session.begin_nested():
            session.add(shop)
    except IntegrityError as exc:  # a concurrent request won the owner or the slug
        raise ShopExists("You already have a shop, or the slug was just taken.") from exc
    if data.invite_code is not None:
        # A code that cannot be used refuses the request: the shop is not opened without it.
        await organisations.join_new_shop(session, shop, data.invite_code)
    return await _out(session, shop, settings)


async def _mine(session: AsyncSession, account_id: uuid.UUID, *, for_update: bool = False) -> Shop:
    shop = await repository.by_owner(session, account_id, for_update=for_update)
    if shop is None:
        raise ShopNotFound("You have no shop yet: open one with POST /v1/shops.")
    return shop


async def my_shop(session: AsyncSession, settings: Settings, account_id: uuid.UUID) -> ShopOut:
    return await _out(session, await _mine(session, account_id), settings)


async def update_shop(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, data: ShopUpdate
) -> ShopOut:
    shop = await _mine(session, account_id, for_update=True)
    if data.name is not None:
        shop.name = data.name
    if data.slug is not None and data.slug != shop.slug:
        if await repository.slug_taken(session, data.slug):
            raise SlugTaken()
        shop.slug = data.slug
    if "blurb" in data.model_fields_set:
        shop.blurb = data.blurb
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise SlugTaken() from exc
    return await _out(session, shop, settings)


async def record_completed_sale(
    session: AsyncSession, settings: Settings, shop_id: uuid.UUID
) -> None:
    """Count one completed sale of the shop (see record_completed_sales)."""
    counted = await repository.add_completed_sales(
        session, {shop_id: 1}, settings.standard_shop_after_sales
    )
    if not counted.found:
        raise ShopNotFound()
    await _emit_promoted(session, counted.promoted)


async def record_completed_sales(
    session: AsyncSession, settings: Settings, sales: dict[uuid.UUID, int]
) -> None:
    """Count completed sales, per shop (one UPDATE however many shops); a trial shop reaching
    `standard_shop_after_sales` becomes standard (one shop.promoted each). A sale is a buyer
    order: the orders domain says when one counts (orders.sale_counted_at) and calls this."""
    if sales:
        counted = await repository.add_completed_sales(
            session, sales, settings.standard_shop_after_sales
        )
        await _emit_promoted(session, counted.promoted)


async def _emit_promoted(session: AsyncSession, promoted: list[tuple[uuid.UUID, int]]) -> None:
    await webhooks.emit_many(
        session,
        EventType.shop_promoted,
        [
            (
                shop_id,
                {
                    "shop_id": str(shop_id),
                    "level": str(ShopLevel.standard),
                    "previous_level": str(ShopLevel.trial),
                    "completed_sales": completed_sales,
                },
            )
            for shop_id, completed_sales in promoted
        ],
    )


async def take_back_sale(session: AsyncSession, shop_id: uuid.UUID) -> None:
    """A counted sale no longer counts (its units all came back after completion). The level
    stays: like Taoxiaopu, a shop that became standard is never demoted."""
    await repository.take_back_sale(session, shop_id)


def _selection_out(selection: ShopProduct, product: Product, on_sale: bool) -> SelectionOut:
    return SelectionOut(
        product_id=selection.product_id,
        title=product.title,
        blurb=selection.blurb,
        markup_bps=selection.markup_bps,
        markup_ceiling_bps=product.markup_ceiling_bps,
        on_sale=on_sale,
        created_at=selection.created_at,
    )


def _check_markup(product: Product, markup_bps: int) -> None:
    if markup_bps > product.markup_ceiling_bps:
        raise MarkupAboveCeiling(
            f"The supplier allows at most {product.markup_ceiling_bps} basis points.",
            extra={"markup_ceiling_bps": product.markup_ceiling_bps},
        )


async def add_product(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, data: SelectionAdd
) -> SelectionOut:
    shop = await _mine(session, account_id, for_update=True)  # serialises the limit check
    product = await catalogue.product_for_shop(session, data.product_id)
    _check_markup(product, data.markup_bps)
    if await repository.selection(session, shop.id, product.id) is not None:
        raise AlreadyInShop()
    limit = _limit(shop, settings)
    if limit is not None and await repository.product_count(session, shop.id) >= limit:
        raise ShopProductLimit(
            f"A trial shop carries at most {limit} products; it becomes standard after "
            f"{settings.standard_shop_after_sales} completed sales.",
            extra={"product_limit": limit},
        )
    selection = ShopProduct(
        shop_id=shop.id, product_id=product.id, blurb=data.blurb, markup_bps=data.markup_bps
    )
    session.add(selection)
    await session.flush()
    return _selection_out(selection, product, True)


async def update_selection(
    session: AsyncSession, account_id: uuid.UUID, product_id: uuid.UUID, data: SelectionUpdate
) -> SelectionOut:
    shop = await _mine(session, account_id)
    selection = await repository.selection(session, shop.id, product_id)
    if selection is None:
        raise NotInShop()
    products = await catalogue.sellable_products(session, [product_id])
    product = products[0] if products else await catalogue.any_product(session, product_id)
    if data.markup_bps is not None:
        _check_markup(product, data.markup_bps)
        selection.markup_bps = data.markup_bps
    if "blurb" in data.model_fields_set:
        selection.blurb = data.blurb
    await session.flush()
    return _selection_out(selection, product, bool(products))


async def remove_product(
    session: AsyncSession, account_id: uuid.UUID, product_id: uuid.UUID
) -> None:
    shop = await _mine(session, account_id)
    selection = await repository.selection(session, shop.id, product_id)
    if selection is None:
        raise NotInShop()
    await session.delete(selection)
    await session.flush()


async def list_selection(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[SelectionOut]:
    shop = await _mine(session, account_id)
    rows = list(await repository.selections(session, shop.id, page.after_id(), page.limit + 1))
    on_sale = {p.id for p in await catalogue.sellable_products(session, [p.id for _, p in rows])}
    cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        cursor = encode_cursor([str(rows[-1][0].id)])
    return Page[SelectionOut](
        items=[_selection_out(sp, p, p.id in on_sale) for sp, p in rows], next_cursor=cursor
    )


async def public_shop(session: AsyncSession, slug: str) -> PublicShop:
    shop = await repository.by_slug(session, slug)
    if shop is None:
        raise ShopNotFound()
    return PublicShop(name=shop.name, slug=shop.slug, blurb=shop.blurb, level=shop.level)


async def public_products(
    session: AsyncSession, slug: str, page: PageParams
) -> Page[PublicProduct]:
    """What buyers see: products on sale and in stock, at the shop's prices."""
    shop = await repository.by_slug(session, slug)
    if shop is None:
        raise ShopNotFound()
    rows = list(
        await repository.public_selections(session, shop.id, page.after_id(), page.limit + 1)
    )
    cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        cursor = encode_cursor([str(rows[-1][0].id)])
    variants = await catalogue.variants_for(session, [p.id for _, p in rows])
    items = []
    for selection, product in rows:
        items.append(
            PublicProduct(
                id=product.id,
                title=product.title,
                description=product.description,
                blurb=selection.blurb,
                image_urls=product.image_urls,
                brand=product.brand,
                category_id=product.category_id,
                return_window_days=product.return_window_days,
                variants=[
                    PublicVariant(
                        id=v.id,
                        options=v.options,
                        price_minor=shop_price(
                            v.price_minor, selection.markup_bps, product.markup_ceiling_bps
                        ),
                        currency=v.currency,
                    )
                    for v in variants.get(product.id, [])
                    if v.stock > 0
                ],
            )
        )
    return Page[PublicProduct](items=items, next_cursor=cursor)


async def shop_of(session: AsyncSession, account_id: uuid.UUID) -> Shop:
    """The caller's shop, for other domains (share links) that act within it."""
    return await _mine(session, account_id)


async def require_selected(
    session: AsyncSession, shop_id: uuid.UUID, product_id: uuid.UUID
) -> None:
    if await repository.selection(session, shop_id, product_id) is None:
        raise NotInShop()


def checkout_shop(slug: str, variant_ids: Sequence[uuid.UUID]) -> Read[CheckoutShop | None]:
    """The shop an order is placed in: its id, its owner and the owner's phone and email
    (self-purchase is the owner buying), and the markup it picked for each product of these
    variants it carries. A read to ask with others."""
    return repository.checkout_shop(slug, variant_ids)


def bought_by_owner(
    shop: CheckoutShop,
    buyer_account_id: uuid.UUID | None,
    phone: str | None,
    email: str | None = None,
) -> bool:
    """Whether the shop's owner is the buyer: by the signed-in account, or by a phone or email
    on the order (normalised as kit/contact writes them) that is the owner's login. A keeper
    checking out as a guest with their own number is still buying in their own shop."""
    if buyer_account_id is not None and buyer_account_id == shop.owner_account_id:
        return True
    if phone is not None and phone == shop.owner_phone:
        return True
    return email is not None and email == shop.owner_email


# The storefront's shelf ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShelfVariant:
    id: uuid.UUID
    options: dict[str, Any]
    price_minor: int  # the shop's price: supplier price plus markup
    currency: str
    stock: int


@dataclass(frozen=True, slots=True)
class ShelfProduct:
    id: uuid.UUID
    title: str
    description: str
    blurb: str | None
    image_urls: list[str]
    brand: str | None
    return_window_days: int
    supplier_name: str
    shipping_fee_minor: int
    shipping_currency: str
    variants: list[ShelfVariant]

    @property
    def sold_out(self) -> bool:
        return all(v.stock <= 0 for v in self.variants)

    @property
    def from_price(self) -> ShelfVariant | None:
        """The cheapest variant in stock (else the cheapest): the price a listing shows."""
        pool = [v for v in self.variants if v.stock > 0] or self.variants
        return min(pool, key=lambda v: v.price_minor, default=None)


@dataclass(frozen=True, slots=True)
class Shelf:
    shop_name: str
    slug: str
    blurb: str | None
    products: list[ShelfProduct]
    next_cursor: str | None


async def _shelf_products(
    session: AsyncSession, rows: Sequence[repository.OnShelf]
) -> list[ShelfProduct]:
    variants = await catalogue.variants_for(session, [r.product.id for r in rows])
    return [
        ShelfProduct(
            id=row.product.id,
            title=row.product.title,
            description=row.product.description,
            blurb=row.selection.blurb,
            image_urls=list(row.product.image_urls or []),
            brand=row.product.brand,
            return_window_days=row.product.return_window_days,
            supplier_name=row.supplier_name,
            shipping_fee_minor=row.shipping_fee_minor,
            shipping_currency=row.shipping_currency,
            variants=[
                ShelfVariant(
                    id=v.id,
                    options=dict(v.options or {}),
                    price_minor=shop_price(
                        v.price_minor, row.selection.markup_bps, row.product.markup_ceiling_bps
                    ),
                    currency=v.currency,
                    stock=v.stock,
                )
                for v in variants.get(row.product.id, [])
            ],
        )
        for row in rows
    ]


async def shelf(session: AsyncSession, slug: str, query: str | None, page: PageParams) -> Shelf:
    """The shop as the storefront shows it: its products on sale, sold out ones included, at
    the shop's prices (the rule checkout prices by), optionally matching a search."""
    shop = await repository.by_slug(session, slug)
    if shop is None:
        raise ShopNotFound()
    tsquery = None
    if query:
        tsquery = query_expression(query)
        if tsquery is None:  # nothing searchable: nothing found
            return Shelf(shop.name, shop.slug, shop.blurb, [], None)
    rows = await repository.shelf(session, shop.id, tsquery, page.after_id(), page.limit + 1)
    cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        cursor = encode_cursor([str(rows[-1].selection.id)])
    return Shelf(shop.name, shop.slug, shop.blurb, await _shelf_products(session, rows), cursor)


async def shelf_product(
    session: AsyncSession, slug: str, product_id: uuid.UUID
) -> tuple[str, ShelfProduct]:
    """(shop name, product) of a product the shop carries and that is on sale now."""
    shop = await repository.by_slug(session, slug)
    if shop is None:
        raise ShopNotFound()
    row = await repository.on_shelf(session, shop.id, product_id)
    if row is None:
        raise NotInShop("The shop does not sell this product now.")
    (product,) = await _shelf_products(session, [row])
    return shop.name, product
