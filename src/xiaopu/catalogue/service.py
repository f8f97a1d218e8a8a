"""Products and variants: create, bulk upsert by SKU, stock pushes, and the browsable catalogue."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.catalogue import repository
from xiaopu.catalogue.schemas import (
    MAX_BULK_VARIANTS,
    MAX_VARIANTS_PER_PRODUCT,
    BulkResult,
    BulkUpsert,
    CatalogueProduct,
    CatalogueVariant,
    CategoryOut,
    ItemError,
    ProductIn,
    ProductOut,
    ProductUpdate,
    StockPush,
    StockResult,
    VariantIn,
    VariantOut,
)
from xiaopu.catalogue.search import index_terms, query_expression
from xiaopu.db import Read
from xiaopu.errors import AppError, Conflict, InvalidCursor, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import Page, PageParams, encode_cursor, id_page, newest_first
from xiaopu.models import Product, ProductStatus, SupplierStatus, Variant
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

_product_adapter = TypeAdapter(ProductIn)


class ProductNotFound(NotFound):
    code = "product_not_found"
    title = "Product not found"


class UnknownCategory(AppError):
    status = 422
    code = "unknown_category"
    title = "No such category"


class SkuTaken(Conflict):
    code = "sku_taken"
    title = "This SKU belongs to another of your products"


class TooManyVariants(AppError):
    status = 422
    code = "too_many_variants"
    title = f"A bulk call carries at most {MAX_BULK_VARIANTS} variants"


class DuplicateSku(AppError):
    status = 422
    code = "duplicate_sku"
    title = "A SKU appears more than once in the payload"


class NotNullable(AppError):
    status = 422
    code = "field_not_nullable"
    title = "A required field cannot be set to null"


# Product fields a PATCH may clear with null.
NULLABLE = frozenset({"brand"})


class Sort(enum.StrEnum):
    commission = "commission"
    price = "price"
    newest = "newest"


# Writing ---------------------------------------------------------------------------------------


def _product_fields(data: ProductIn | ProductUpdate) -> dict[str, Any]:
    fields = data.model_dump(
        exclude={"ref", "variants"}, exclude_unset=isinstance(data, ProductUpdate)
    )
    if "image_urls" in fields and fields["image_urls"] is not None:
        fields["image_urls"] = [str(u) for u in fields["image_urls"]]
    if isinstance(data, ProductUpdate):
        required = sorted(k for k, v in fields.items() if v is None and k not in NULLABLE)
        if required:
            raise NotNullable(f"These fields cannot be null: {', '.join(required)}.")
    return fields


def _variant_fields(data: VariantIn) -> dict[str, Any]:
    return data.model_dump(exclude={"sku"})


def _assign(target: Product | Variant, fields: dict[str, Any]) -> bool:
    changed = False
    for name, value in fields.items():
        if getattr(target, name) != value:
            setattr(target, name, value)
            changed = True
    return changed


def _item_problems(
    item: ProductIn,
    categories: set[str],
    owners: dict[str, Variant],
    products: dict[str, Product],
    counts: dict[uuid.UUID, int],
) -> list[str]:
    problems = []
    if item.category_id not in categories:
        problems.append(f"unknown category {item.category_id!r}")
    product = products.get(item.ref)
    for variant in item.variants:
        existing = owners.get(variant.sku)
        if existing is not None and (product is None or existing.product_id != product.id):
            problems.append(f"sku {variant.sku!r} belongs to another of your products")
    # Variants are kept when an upsert leaves them out, so a product grows across calls.
    added = sum(1 for v in item.variants if v.sku not in owners)
    total = (counts.get(product.id, 0) if product is not None else 0) + added
    if total > MAX_VARIANTS_PER_PRODUCT:
        problems.append(
            f"too many variants: a product has at most {MAX_VARIANTS_PER_PRODUCT}, "
            f"and this one would have {total}"
        )
    return problems


async def _apply(
    session: AsyncSession, supplier_id: uuid.UUID, items: Sequence[tuple[int, ProductIn]]
) -> tuple[BulkResult, list[Product]]:
    """Create or update products by ref and their variants by SKU; items with problems are
    reported and skipped. Sending what is stored changes nothing."""
    categories = await repository.category_ids(session)
    products = await repository.products_by_ref(session, supplier_id, {i.ref for _, i in items})
    skus = {v.sku for _, item in items for v in item.variants}
    variants = await repository.variants_by_sku(session, supplier_id, skus)
    counts = await repository.variant_counts(session, [p.id for p in products.values()])
    result = BulkResult(created=0, updated=0, unchanged=0, failed=[])
    touched: list[Product] = []
    for index, item in items:
        problems = _item_problems(item, categories, variants, products, counts)
        if problems:
            result.failed.append(ItemError(index=index, ref=item.ref, errors=problems))
            continue
        product = products.get(item.ref)
        fields = _product_fields(item)
        fields["search_terms"] = index_terms(item.title, item.brand)
        if product is None:
            # The id is set here, not at flush, so that all rows go to the database in batches.
            product = Product(id=new_id(), supplier_id=supplier_id, ref=item.ref, **fields)
            session.add(product)
            products[item.ref] = product
            product_changed = True
        else:
            product_changed = _assign(product, fields)
        for data in item.variants:
            variant = variants.get(data.sku)
            if variant is None:
                variant = Variant(
                    id=new_id(),
                    product_id=product.id,
                    supplier_id=supplier_id,
                    sku=data.sku,
                    **_variant_fields(data),
                )
                session.add(variant)
                variants[data.sku] = variant
                result.created += 1
                product_changed = True
            elif _assign(variant, _variant_fields(data)):
                result.updated += 1
                product_changed = True
            else:
                result.unchanged += 1
        if product_changed:
            touched.append(product)
    await session.flush()
    await repository.refresh_summaries(session, [p.id for p in touched])
    return result, touched


async def _out(session: AsyncSession, products: Sequence[Product]) -> list[ProductOut]:
    variants = await repository.variants_of(session, [p.id for p in products])
    by_product: dict[uuid.UUID, list[VariantOut]] = {}
    for v in variants:
        by_product.setdefault(v.product_id, []).append(VariantOut.model_validate(v))
    return [
        ProductOut.model_validate(
            {
                **{c: getattr(p, c) for c in ProductOut.model_fields if c != "variants"},
                "variants": by_product.get(p.id, []),
            }
        )
        for p in products
    ]


async def create_product(
    session: AsyncSession, supplier_id: uuid.UUID, data: ProductIn
) -> ProductOut:
    existing = await repository.products_by_ref(session, supplier_id, [data.ref])
    if data.ref in existing:
        raise Conflict(f"A product with ref {data.ref!r} exists; update it or use bulk upsert.")
    result, touched = await _apply(session, supplier_id, [(0, data)])
    if result.failed:
        problems = result.failed[0].errors
        if any(p.startswith("unknown category") for p in problems):
            raise UnknownCategory("; ".join(problems))
        raise SkuTaken("; ".join(problems))
    await session.refresh(touched[0])
    return (await _out(session, touched))[0]


async def bulk_upsert(
    session: AsyncSession, supplier_id: uuid.UUID, data: BulkUpsert
) -> BulkResult:
    raw_variants = [
        v
        for item in data.products
        if isinstance(item.get("variants"), list)
        for v in item["variants"]
        if isinstance(v, dict)
    ]
    # Every product needs a variant, so more products than that is too many variants as well.
    if len(raw_variants) > MAX_BULK_VARIANTS or len(data.products) > MAX_BULK_VARIANTS:
        raise TooManyVariants(f"This call carries {len(raw_variants)} variants.")
    skus = [str(v["sku"]) for v in raw_variants if isinstance(v.get("sku"), str)]
    duplicates = (
        sorted({s for s in skus if skus.count(s) > 1}) if len(skus) != len(set(skus)) else []
    )
    if duplicates:
        raise DuplicateSku(f"Repeated SKUs: {', '.join(duplicates[:10])}.")
    valid: list[tuple[int, ProductIn]] = []
    failed: list[ItemError] = []
    refs: set[str] = set()
    for index, raw in enumerate(data.products):
        try:
            item = _product_adapter.validate_python(raw)
        except ValidationError as exc:
            errors = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            ref = raw.get("ref") if isinstance(raw.get("ref"), str) else None
            failed.append(ItemError(index=index, ref=ref, errors=errors))
            continue
        if item.ref in refs:
            failed.append(ItemError(index=index, ref=item.ref, errors=["ref repeated in payload"]))
            continue
        refs.add(item.ref)
        valid.append((index, item))
    result, _ = await _apply(session, supplier_id, valid)
    result.failed = sorted(failed + result.failed, key=lambda e: e.index)
    return result


async def _product(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    product_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Product:
    product = await repository.product(session, supplier_id, product_id, for_update=for_update)
    if product is None:
        raise ProductNotFound()
    return product


async def get_product(
    session: AsyncSession, supplier_id: uuid.UUID, product_id: uuid.UUID
) -> ProductOut:
    return (await _out(session, [await _product(session, supplier_id, product_id)]))[0]


async def update_product(
    session: AsyncSession, supplier_id: uuid.UUID, product_id: uuid.UUID, data: ProductUpdate
) -> ProductOut:
    product = await _product(session, supplier_id, product_id, for_update=True)
    fields = _product_fields(data)
    if "category_id" in fields and fields["category_id"] not in await repository.category_ids(
        session
    ):
        raise UnknownCategory(f"unknown category {fields['category_id']!r}")
    if _assign(product, fields):
        product.search_terms = index_terms(product.title, product.brand)
        await session.flush()
        await repository.refresh_summaries(session, [product.id])
        await session.refresh(product)
    return (await _out(session, [product]))[0]


async def list_products(
    session: AsyncSession, supplier_id: uuid.UUID, page: PageParams
) -> Page[ProductOut]:
    stmt = newest_first(repository.supplier_products(supplier_id), Product.id, page)
    rows = (await session.scalars(stmt)).all()
    items, cursor = id_page(rows, page, lambda p: p.id)
    return Page[ProductOut](items=await _out(session, items), next_cursor=cursor)


async def _set_stock(session: AsyncSession, variant: Variant, stock: int) -> None:
    """Change a variant's stock; falling below its threshold emits product.stock_low."""
    was = variant.stock
    variant.stock = stock
    change = StockChange(
        variant.supplier_id,
        variant.product_id,
        variant.id,
        variant.sku,
        variant.low_stock_threshold,
    )
    await _stock_low(session, change, was, stock)


@dataclass(frozen=True, slots=True)
class StockChange:
    """The variant whose stock changed, as product.stock_low names it."""

    supplier_id: uuid.UUID
    product_id: uuid.UUID
    id: uuid.UUID
    sku: str
    low_stock_threshold: int


async def _stock_low(session: AsyncSession, variant: StockChange, was: int, stock: int) -> None:
    """Emit product.stock_low if the variant's stock went from `was` to below its threshold."""
    if was >= variant.low_stock_threshold > stock:
        await webhooks.emit(
            session,
            EventType.product_stock_low,
            variant.supplier_id,
            {
                "product_id": str(variant.product_id),
                "variant_id": str(variant.id),
                "sku": variant.sku,
                "stock": stock,
                "threshold": variant.low_stock_threshold,
            },
        )


async def push_stock(session: AsyncSession, supplier_id: uuid.UUID, data: StockPush) -> StockResult:
    """Set absolute stock levels; a variant falling below its threshold emits product.stock_low."""
    variants = await repository.variants_by_sku(
        session, supplier_id, [i.sku for i in data.items], for_update=True
    )
    updated = 0
    for item in data.items:
        variant = variants.get(item.sku)
        if variant is None or variant.stock == item.stock:
            continue
        await _set_stock(session, variant, item.stock)
        updated += 1
    await session.flush()
    unknown = [i.sku for i in data.items if i.sku not in variants]
    return StockResult(updated=updated, unknown_skus=unknown)


# Reading: the catalogue shopkeepers browse -----------------------------------------------------


async def list_categories(session: AsyncSession) -> list[CategoryOut]:
    return [CategoryOut.model_validate(c) for c in await repository.categories(session)]


def effective_commission(product_bps: int, variant_bps: int | None) -> int:
    """A variant's own commission rate, where it has one, else its product's."""
    return product_bps if variant_bps is None else variant_bps


async def catalogue_view(
    session: AsyncSession, products: Sequence[Product]
) -> list[CatalogueProduct]:
    variants = await repository.variants_of(session, [p.id for p in products])
    by_product: dict[uuid.UUID, list[Variant]] = {}
    for v in variants:
        by_product.setdefault(v.product_id, []).append(v)
    return [
        CatalogueProduct(
            id=p.id,
            supplier_id=p.supplier_id,
            title=p.title,
            description=p.description,
            image_urls=p.image_urls,
            category_id=p.category_id,
            brand=p.brand,
            return_window_days=p.return_window_days,
            commission_bps=p.commission_bps,
            max_commission_bps=p.max_commission_bps,
            markup_ceiling_bps=p.markup_ceiling_bps,
            min_price_minor=p.min_price_minor,
            created_at=p.created_at,
            variants=[
                CatalogueVariant(
                    id=v.id,
                    sku=v.sku,
                    options=v.options,
                    price_minor=v.price_minor,
                    currency=v.currency,
                    in_stock=v.stock > 0,
                    commission_bps=effective_commission(p.commission_bps, v.commission_bps),
                )
                for v in by_product.get(p.id, [])
            ],
        )
        for p in products
    ]


class InvalidSearch(AppError):
    status = 422
    code = "invalid_search"
    title = "The search has no letters, digits or Chinese characters to look for"


async def browse(
    session: AsyncSession,
    *,
    query: str | None,
    category_id: str | None,
    sort: Sort,
    page: PageParams,
) -> Page[CatalogueProduct]:
    expression = None
    if query:
        expression = query_expression(query)
        if expression is None:
            raise InvalidSearch()
    key, descending = {
        Sort.commission: (Product.max_commission_bps, True),
        Sort.price: (Product.min_price_minor, False),
        Sort.newest: (None, True),
    }[sort]
    cursor = page.decode()
    after: tuple[int | None, uuid.UUID] | None = None
    if cursor:
        try:
            key_value = None if key is None else int(cursor[0])
            after = (key_value, uuid.UUID(str(cursor[-1])))
        except (ValueError, IndexError) as exc:
            raise InvalidCursor() from exc
    stmt = repository.browse_statement(
        tsquery=expression,
        category_id=category_id,
        key=key,
        descending=descending,
        after=after,
        limit=page.limit + 1,
    )
    rows = list((await session.scalars(stmt)).all())
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        last = rows[-1]
        values: list[str | int] = (
            [str(last.id)] if key is None else [int(getattr(last, key.key)), str(last.id)]
        )
        next_cursor = encode_cursor(values)
    return Page[CatalogueProduct](
        items=await catalogue_view(session, rows), next_cursor=next_cursor
    )


async def sellable_products(
    session: AsyncSession, product_ids: Sequence[uuid.UUID]
) -> list[Product]:
    """Those of these products that are on sale now (active, from an active supplier)."""
    if not product_ids:
        return []
    stmt = repository.sellable().where(Product.id.in_(product_ids))
    return list((await session.scalars(stmt)).all())


async def product_for_shop(session: AsyncSession, product_id: uuid.UUID) -> Product:
    products = await sellable_products(session, [product_id])
    if not products:
        raise ProductNotFound()
    return products[0]


async def any_product(session: AsyncSession, product_id: uuid.UUID) -> Product:
    """A product whatever its status (for a shop's own view of what it picked)."""
    product = await session.get(Product, product_id)
    if product is None:
        raise ProductNotFound()
    return product


async def variants_for(
    session: AsyncSession, product_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Variant]]:
    by_product: dict[uuid.UUID, list[Variant]] = {}
    for variant in await repository.variants_of(session, product_ids):
        by_product.setdefault(variant.product_id, []).append(variant)
    return by_product


async def supplier_product_rows(session: AsyncSession, supplier_id: uuid.UUID) -> list[Product]:
    stmt = repository.supplier_products(supplier_id).order_by(Product.id)
    return list((await session.scalars(stmt)).all())


# Selling: what checkout reads, takes and gives back ------------------------------------------


ForSale = repository.ForSale


def on_sale(sale: ForSale) -> bool:
    return (
        sale.product_status is ProductStatus.active
        and sale.supplier_status is SupplierStatus.active
    )


def sale_commission(sale: ForSale) -> int:
    return effective_commission(sale.product_commission_bps, sale.variant_commission_bps)


def for_sale(variant_ids: Sequence[uuid.UUID]) -> Read[dict[uuid.UUID, ForSale]]:
    """The variants as checkout sells them, by id, with their stock when read (no lock is
    taken: take_stock checks the stock again as it takes it). A read to ask with others."""
    return repository.for_checkout(variant_ids)


async def take_stock(session: AsyncSession, lines: Sequence[tuple[ForSale, int]]) -> None:
    """Take each line's units (a variant as for_sale read it, and a quantity) with the unit of
    work's commit, all or none: if a line's stock no longer has them, or its variant's price,
    currency or commission changed since, nothing is written and the unit of work fails with
    ConcurrentChange, to be run again on the variants as they are then. A variant whose stock
    falls below its threshold emits product.stock_low."""

    async def crossed_low(taken: list[repository.Taken]) -> None:
        for t in taken:
            change = StockChange(
                t.supplier_id, t.product_id, t.variant_id, t.sku, t.low_stock_threshold
            )
            await _stock_low(session, change, t.stock + t.quantity, t.stock)

    await repository.take_stock(session, lines, utcnow(), crossed_low)


async def give_back_stock(session: AsyncSession, returned: dict[uuid.UUID, int]) -> None:
    """Put units back in stock (expired orders, a cancelled one, or a restocked return)."""
    if not returned:
        return
    await session.flush()  # the statement below writes past the session
    await repository.give_back(session, returned, utcnow())


class AllocationShort(Conflict):
    code = "allocation_exceeds_stock"
    title = "A variant has fewer units in stock than the campaign allocates"


async def set_aside(
    session: AsyncSession, supplier_id: uuid.UUID, units: dict[uuid.UUID, int]
) -> None:
    """Take a campaign's allocated units out of the variants' stock, all or none (a variant
    short of them is a 409 naming it and its stock): from here they sell at campaign terms
    only, and come back with give_back_stock."""
    if not units:
        return
    await session.flush()
    taken = await repository.set_aside(session, supplier_id, units, utcnow())
    short = [v for v in units if v not in taken]
    if short:
        raise AllocationShort(
            "Stock does not cover the allocation of every variant.",
            extra={"variant_ids": [str(v) for v in short]},
        )
