"""Request and response bodies for products, variants, bulk upserts and stock pushes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from xiaopu.kit.money import BasisPoints, CurrencyCode, MinorAmount
from xiaopu.kit.schema import RequestModel, ResponseModel, WebUrl
from xiaopu.kit.text import DisplayName, MultilineText
from xiaopu.models import ProductStatus

MAX_BULK_VARIANTS = 1000
# Variants one product may have: a catalogue page lists each product with all its variants, so
# this (with the page size) bounds what one page answers.
MAX_VARIANTS_PER_PRODUCT = 200

ImageUrl = WebUrl
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
OptionValues = Annotated[
    dict[
        Annotated[DisplayName, Field(max_length=32)], Annotated[DisplayName, Field(max_length=64)]
    ],
    Field(max_length=5, description='Option values, e.g. {"size": "L", "colour": "red"}.'),
]


class VariantIn(RequestModel):
    sku: Sku = Field(description="Your own SKU id, unique across your products.")
    options: OptionValues = Field(default_factory=dict)
    price_minor: MinorAmount
    currency: CurrencyCode
    stock: int = Field(ge=0, le=10**9)
    weight_grams: int | None = Field(default=None, ge=0, le=10**7)
    commission_bps: BasisPoints | None = Field(
        default=None, description="Overrides the product's commission for this variant."
    )
    low_stock_threshold: int = Field(default=0, ge=0, le=10**9)


class ProductIn(RequestModel):
    ref: str = Field(
        min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$", description="Your product code."
    )
    title: DisplayName = Field(min_length=1, max_length=200, pattern=r"\S")
    description: MultilineText = Field(default="", max_length=10_000)
    image_urls: list[ImageUrl] = Field(default_factory=list, max_length=20)
    category_id: str = Field(min_length=1, max_length=64)
    brand: DisplayName | None = Field(default=None, max_length=80)
    return_window_days: int = Field(default=7, ge=0, le=90)
    commission_bps: BasisPoints
    markup_ceiling_bps: BasisPoints = Field(
        default=0, description="Highest markup shopkeepers may add; 0 allows none."
    )
    status: ProductStatus = ProductStatus.draft
    variants: list[VariantIn] = Field(min_length=1, max_length=MAX_VARIANTS_PER_PRODUCT)

    @model_validator(mode="after")
    def _skus_unique(self) -> Self:
        skus = [v.sku for v in self.variants]
        if len(skus) != len(set(skus)):
            raise ValueError("each variant needs its own sku")
        return self


class ProductUpdate(RequestModel):
    title: DisplayName | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S")
    description: MultilineText | None = Field(default=None, max_length=10_000)
    image_urls: list[ImageUrl] | None = Field(default=None, max_length=20)
    category_id: str | None = Field(default=None, min_length=1, max_length=64)
    brand: DisplayName | None = Field(default=None, max_length=80)
    return_window_days: int | None = Field(default=None, ge=0, le=90)
    commission_bps: BasisPoints | None = None
    markup_ceiling_bps: BasisPoints | None = None
    status: ProductStatus | None = None


class BulkUpsert(RequestModel):
    products: list[dict[str, Any]] = Field(
        min_length=1,
        description=(
            "Products in the shape of ProductIn, at most 1,000 variants in all. Matched by "
            "`ref` and each variant by `sku`; an item that fails is reported, the rest applied."
        ),
        json_schema_extra={"items": {"$ref": "#/components/schemas/ProductIn"}},
    )


class ItemError(ResponseModel):
    index: int
    ref: str | None
    errors: list[str]


class BulkResult(ResponseModel):
    created: int = Field(description="Variants created.")
    updated: int = Field(description="Variants changed.")
    unchanged: int = Field(description="Variants sent exactly as stored.")
    failed: list[ItemError]


class StockLevel(RequestModel):
    sku: Sku
    stock: int = Field(ge=0, le=10**9)


class StockPush(RequestModel):
    items: list[StockLevel] = Field(min_length=1, max_length=MAX_BULK_VARIANTS)

    @model_validator(mode="after")
    def _skus_unique(self) -> Self:
        skus = [i.sku for i in self.items]
        if len(skus) != len(set(skus)):
            raise ValueError("each sku may appear once")
        return self


class StockResult(ResponseModel):
    updated: int
    unknown_skus: list[str]


class VariantOut(ResponseModel):
    id: uuid.UUID
    sku: str
    options: dict[str, str]
    price_minor: int
    currency: str
    stock: int
    weight_grams: int | None
    commission_bps: int | None
    low_stock_threshold: int


class ProductOut(ResponseModel):
    id: uuid.UUID
    supplier_id: uuid.UUID
    ref: str
    title: str
    description: str
    image_urls: list[str]
    category_id: str
    brand: str | None
    return_window_days: int
    commission_bps: int
    markup_ceiling_bps: int
    status: ProductStatus
    variants: list[VariantOut]
    created_at: datetime
    updated_at: datetime


class CategoryOut(ResponseModel):
    id: str
    parent_id: str | None
    name_zh: str
    name_en: str


class CatalogueVariant(ResponseModel):
    id: uuid.UUID
    sku: str
    options: dict[str, str]
    price_minor: int
    currency: str
    in_stock: bool
    commission_bps: int = Field(description="Commission the shopkeeper earns on this variant.")


class CatalogueProduct(ResponseModel):
    """A product as shopkeepers browse it."""

    id: uuid.UUID
    supplier_id: uuid.UUID
    title: str
    description: str
    image_urls: list[str]
    category_id: str
    brand: str | None
    return_window_days: int
    commission_bps: int
    max_commission_bps: int
    markup_ceiling_bps: int
    min_price_minor: int
    variants: list[CatalogueVariant]
    created_at: datetime
