"""Queries for shops and their selections."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import Read
from xiaopu.kit.clock import utcnow
from xiaopu.models import (
    Product,
    ProductStatus,
    Shop,
    ShopProduct,
    Supplier,
    SupplierStatus,
    Variant,
)


async def by_owner(
    session: AsyncSession, account_id: uuid.UUID, *, for_update: bool = False
) -> Shop | None:
    stmt = select(Shop).where(Shop.owner_account_id == account_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def by_slug(session: AsyncSession, slug: str) -> Shop | None:
    return await session.scalar(select(Shop).where(Shop.slug == slug))


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return await session.scalar(select(Shop.id).where(Shop.slug == slug)) is not None


async def product_count(session: AsyncSession, shop_id: uuid.UUID) -> int:
    count = await session.scalar(select(func.count()).where(ShopProduct.shop_id == shop_id))
    return int(count or 0)


async def selection(
    session: AsyncSession, shop_id: uuid.UUID, product_id: uuid.UUID
) -> ShopProduct | None:
    return await session.scalar(
        select(ShopProduct).where(
            ShopProduct.shop_id == shop_id, ShopProduct.product_id == product_id
        )
    )


def selections_statement(
    shop_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> Select[ShopProduct, Product]:
    """A page of the shop's selections, newest first, off ix_shop_products_shop_id."""
    stmt = (
        select(ShopProduct, Product)
        .join(Product, Product.id == ShopProduct.product_id)
        .where(ShopProduct.shop_id == shop_id)
    )
    if after is not None:
        stmt = stmt.where(ShopProduct.id < after)
    return stmt.order_by(ShopProduct.id.desc()).limit(limit)


async def selections(
    session: AsyncSession, shop_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> Sequence[tuple[ShopProduct, Product]]:
    rows = await session.execute(selections_statement(shop_id, after, limit))
    return [(sp, p) for sp, p in rows.all()]


async def get(
    session: AsyncSession, shop_id: uuid.UUID, *, for_update: bool = False
) -> Shop | None:
    return await session.get(Shop, shop_id, with_for_update=for_update)


@dataclass(frozen=True, slots=True)
class CountedSales:
    found: int  # shops counted
    promoted: list[tuple[uuid.UUID, int]]  # (shop, completed sales) of those promoted


async def add_completed_sales(
    session: AsyncSession, sales: dict[uuid.UUID, int], standard_after: int
) -> CountedSales:
    """Add completed sales per shop, promoting a trial shop that reaches `standard_after`;
    returns how many shops were found, and those promoted. Locks the shops in id order
    (several completion batches may count for the same shops)."""
    result = await session.execute(
        text(
            """
            WITH counted AS (
                UPDATE shops SET completed_sales = shops.completed_sales + c.sales,
                    level = CASE WHEN shops.level = 'trial'
                        AND shops.completed_sales + c.sales >= :after THEN 'standard'
                        ELSE shops.level END,
                    updated_at = :now
                FROM (
                    SELECT s.id, s.level AS was, c.sales
                    FROM shops AS s
                    JOIN unnest(CAST(:ids AS uuid[]), CAST(:sales AS int[])) AS c (id, sales)
                        ON s.id = c.id
                    ORDER BY s.id
                    FOR UPDATE OF s
                ) AS c
                WHERE shops.id = c.id
                RETURNING shops.id, shops.completed_sales, shops.level <> c.was AS promoted
            )
            SELECT count(*) AS found,
                coalesce(array_agg(id ORDER BY id) FILTER (WHERE promoted), '{}') AS ids,
                coalesce(array_agg(completed_sales ORDER BY id) FILTER (WHERE promoted), '{}')
                    AS sales
            FROM counted
            """
        ),
        {
            "ids": list(sales),
            "sales": list(sales.values()),
            "after": standard_after,
            "now": utcnow(),
        },
    )
    row = result.one()
    return CountedSales(int(row.found), list(zip(row.ids, row.sales, strict=True)))


async def take_back_sale(session: AsyncSession, shop_id: uuid.UUID) -> None:
    await session.execute(
        text(
            "UPDATE shops SET completed_sales = completed_sales - 1, updated_at = :now "
            "WHERE id = :id AND completed_sales > 0"
        ),
        {"id": shop_id, "now": utcnow()},
    )


def public_selections_statement(
    shop_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> Select[ShopProduct, Product]:
    """The shop's products that are on sale with at least one variant in stock, newest first,
    walking ix_shop_products_shop_id."""
    in_stock = (
        select(Variant.id).where(Variant.product_id == Product.id, Variant.stock > 0).exists()
    )
    stmt = (
        select(ShopProduct, Product)
        .join(Product, Product.id == ShopProduct.product_id)
        .join(Supplier, Supplier.id == Product.supplier_id)
        .where(
            ShopProduct.shop_id == shop_id,
            Product.status == ProductStatus.active,
            Supplier.status == SupplierStatus.active,
            in_stock,
        )
    )
    if after is not None:
        stmt = stmt.where(ShopProduct.id < after)
    return stmt.order_by(ShopProduct.id.desc()).limit(limit)


async def public_selections(
    session: AsyncSession, shop_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> Sequence[tuple[ShopProduct, Product]]:
    rows = await session.execute(public_selections_statement(shop_id, after, limit))
    return [(sp, p) for sp, p in rows.all()]


@dataclass(frozen=True, slots=True)
class CheckoutShop:
    id: uuid.UUID
    owner_account_id: uuid.UUID
    # The owner's login identities (normalised as kit/contact writes them): a buyer who gives
    # one of them is the owner, signed in or not.
    owner_phone: str | None
    owner_email: str | None
    markups: dict[uuid.UUID, int]  # product id -> the shop's markup; absent: not carried


# The shop and its markups on the products of these variants: each variant a scalar parameter,
# so that the statement keeps a generic plan (see catalogue's for_checkout). The products are
# found first (by the variants' key, once) and the shop's selection probed by (shop, product):
# a join the planner may start from the selection reads every product the shop carries. The
# owner's account is one more row by its key, in the same statement: checkout has one read.
_CHECKOUT_SHOP = """
SELECT s.id, s.owner_account_id, o.phone, o.email, sp.product_id, sp.markup_bps
FROM shops AS s
JOIN accounts AS o ON o.id = s.owner_account_id
LEFT JOIN shop_products AS sp ON sp.shop_id = s.id
    AND sp.product_id = ANY (ARRAY(SELECT v.product_id FROM variants AS v WHERE v.id IN ({ids})))
WHERE s.slug = $1
"""


@functools.cache
def _checkout_shop_sql(count: int) -> str:
    return _CHECKOUT_SHOP.format(ids=", ".join(f"${i + 2}::uuid" for i in range(count)))


def checkout_shop(slug: str, variant_ids: Sequence[uuid.UUID]) -> Read[CheckoutShop | None]:
    """A shop by its slug with its owner's identities and its markups on the products of these
    variants: a read that checkout asks with its others on every order (db.read_together)."""
    return Read(_checkout_shop_sql(len(variant_ids)), (slug, *variant_ids), _checkout_shop)


def _checkout_shop(rows: Sequence[Any]) -> CheckoutShop | None:
    if not rows:
        return None
    markups = {r[4]: r[5] for r in rows if r[4] is not None}
    first = rows[0]
    return CheckoutShop(first[0], first[1], first[2], first[3], markups)


@dataclass(frozen=True, slots=True)
class OnShelf:
    """A product the shop carries that is on sale now, with the shop's terms and the
    supplier's shipping charge."""

    selection: ShopProduct
    product: Product
    supplier_name: str
    shipping_fee_minor: int
    shipping_currency: str


def _on_shelf(shop_id: uuid.UUID) -> Any:
    return (
        select(
            ShopProduct,
            Product,
            Supplier.name,
            Supplier.shipping_fee_minor,
            Supplier.shipping_currency,
        )
        .join(Product, Product.id == ShopProduct.product_id)
        .join(Supplier, Supplier.id == Product.supplier_id)
        .where(
            ShopProduct.shop_id == shop_id,
            Product.status == ProductStatus.active,
            Supplier.status == SupplierStatus.active,
        )
    )


async def shelf(
    session: AsyncSession,
    shop_id: uuid.UUID,
    tsquery: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[OnShelf]:
    """The shop's products on sale (sold out ones too), newest pick first, optionally only
    those matching a to_tsquery('simple', ...) expression."""
    stmt = _on_shelf(shop_id)
    if tsquery is not None:
        stmt = stmt.where(Product.search.op("@@")(func.to_tsquery("simple", tsquery)))
    if after is not None:
        stmt = stmt.where(ShopProduct.id < after)
    rows = await session.execute(stmt.order_by(ShopProduct.id.desc()).limit(limit))
    return [OnShelf(*row) for row in rows.all()]


async def on_shelf(
    session: AsyncSession, shop_id: uuid.UUID, product_id: uuid.UUID
) -> OnShelf | None:
    row = (await session.execute(_on_shelf(shop_id).where(Product.id == product_id))).first()
    return OnShelf(*row) if row is not None else None
