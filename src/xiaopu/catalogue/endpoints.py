"""Routes for suppliers' products and stock, and the catalogue shopkeepers browse."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from xiaopu.auth.auth import CurrentPerson
from xiaopu.catalogue import service
from xiaopu.catalogue.auth import ProductReader, ProductWriter
from xiaopu.catalogue.schemas import (
    BulkResult,
    BulkUpsert,
    CatalogueProduct,
    CategoryOut,
    ProductIn,
    ProductOut,
    ProductUpdate,
    StockPush,
    StockResult,
)
from xiaopu.catalogue.service import Sort
from xiaopu.db import DbSession
from xiaopu.kit.pagination import Page, Pagination

router = APIRouter(prefix="/v1/suppliers/{supplier_id}", tags=["catalogue"])
browse_router = APIRouter(prefix="/v1/catalogue", tags=["catalogue"])


@router.post(
    "/products", status_code=status.HTTP_201_CREATED, operation_id="catalogue-create_product"
)
async def create_product(
    supplier_id: uuid.UUID, body: ProductIn, caller: ProductWriter, session: DbSession
) -> ProductOut:
    return await service.create_product(session, caller.supplier_id, body)


@router.post("/products/bulk-upsert", operation_id="catalogue-bulk_upsert_products")
async def bulk_upsert_products(
    supplier_id: uuid.UUID, body: BulkUpsert, caller: ProductWriter, session: DbSession
) -> BulkResult:
    """Create or update up to 1,000 variants by your product refs and SKUs (at most 200 to a
    product; variants left out are kept). Sending the same payload again changes nothing;
    items that fail are reported without failing the rest."""
    return await service.bulk_upsert(session, caller.supplier_id, body)


@router.get("/products", operation_id="catalogue-list_products")
async def list_products(
    supplier_id: uuid.UUID, caller: ProductReader, session: DbSession, page: Pagination
) -> Page[ProductOut]:
    return await service.list_products(session, caller.supplier_id, page)


@router.get("/products/{product_id}", operation_id="catalogue-get_product")
async def get_product(
    supplier_id: uuid.UUID, product_id: uuid.UUID, caller: ProductReader, session: DbSession
) -> ProductOut:
    return await service.get_product(session, caller.supplier_id, product_id)


@router.patch("/products/{product_id}", operation_id="catalogue-update_product")
async def update_product(
    supplier_id: uuid.UUID,
    product_id: uuid.UUID,
    body: ProductUpdate,
    caller: ProductWriter,
    session: DbSession,
) -> ProductOut:
    """Change a product. Orders already placed keep the prices and rates they were placed at."""
    return await service.update_product(session, caller.supplier_id, product_id, body)


@router.post("/stock", operation_id="catalogue-push_stock")
async def push_stock(
    supplier_id: uuid.UUID, body: StockPush, caller: ProductWriter, session: DbSession
) -> StockResult:
    """Set absolute stock levels for many SKUs at once."""
    return await service.push_stock(session, caller.supplier_id, body)


@browse_router.get("/categories", operation_id="catalogue-list_categories")
async def list_categories(session: DbSession) -> list[CategoryOut]:
    return await service.list_categories(session)


@browse_router.get("/products", operation_id="catalogue-browse_catalogue")
async def browse_catalogue(
    person: CurrentPerson,
    session: DbSession,
    page: Pagination,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Words or Chinese text. At most 1,000 matches (the first the text "
            "index yields) are sorted and paged.",
        ),
    ] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    sort: Sort = Sort.newest,
) -> Page[CatalogueProduct]:
    """Products shopkeepers can add to their shops: active, from active suppliers."""
    return await service.browse(session, query=q, category_id=category, sort=sort, page=page)
