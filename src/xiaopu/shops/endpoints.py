"""Routes for opening a shop, picking products, and the public shop pages."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from xiaopu.auth.auth import CurrentPerson
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.shops import service
from xiaopu.shops.schemas import (
    SLUG_PATTERN,
    PublicProduct,
    PublicShop,
    SelectionAdd,
    SelectionOut,
    SelectionUpdate,
    ShopCreate,
    ShopOut,
    ShopUpdate,
)

router = APIRouter(prefix="/v1/shops", tags=["shops"])
Slug = Annotated[str, Path(pattern=SLUG_PATTERN)]


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="shops-open_shop")
async def open_shop(
    person: CurrentPerson, session: DbSession, settings: AppSettings, body: ShopCreate | None = None
) -> ShopOut:
    """Open your shop in one call; name and slug are made up for you when omitted."""
    return await service.open_shop(session, settings, person.account_id, body or ShopCreate())


@router.get("/mine", operation_id="shops-get_my_shop")
async def get_my_shop(person: CurrentPerson, session: DbSession, settings: AppSettings) -> ShopOut:
    return await service.my_shop(session, settings, person.account_id)


@router.patch("/mine", operation_id="shops-update_my_shop")
async def update_my_shop(
    body: ShopUpdate, person: CurrentPerson, session: DbSession, settings: AppSettings
) -> ShopOut:
    return await service.update_shop(session, settings, person.account_id, body)


@router.get("/mine/products", operation_id="shops-list_my_products")
async def list_my_products(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[SelectionOut]:
    return await service.list_selection(session, person.account_id, page)


@router.post(
    "/mine/products", status_code=status.HTTP_201_CREATED, operation_id="shops-add_product_to_shop"
)
async def add_product_to_shop(
    body: SelectionAdd, person: CurrentPerson, session: DbSession, settings: AppSettings
) -> SelectionOut:
    return await service.add_product(session, settings, person.account_id, body)


@router.patch("/mine/products/{product_id}", operation_id="shops-update_shop_product")
async def update_shop_product(
    product_id: uuid.UUID, body: SelectionUpdate, person: CurrentPerson, session: DbSession
) -> SelectionOut:
    return await service.update_selection(session, person.account_id, product_id, body)


@router.delete(
    "/mine/products/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="shops-remove_product_from_shop",
)
async def remove_product_from_shop(
    product_id: uuid.UUID, person: CurrentPerson, session: DbSession
) -> Response:
    await service.remove_product(session, person.account_id, product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{slug}", operation_id="shops-get_public_shop")
async def get_public_shop(slug: Slug, session: DbSession) -> PublicShop:
    """A shop's public face; no login needed."""
    return await service.public_shop(session, slug)


@router.get("/{slug}/products", operation_id="shops-list_public_products")
async def list_public_products(
    slug: Slug, session: DbSession, page: Pagination
) -> Page[PublicProduct]:
    """The shop's products as buyers see them: on sale, in stock, at the shop's prices."""
    return await service.public_products(session, slug, page)
