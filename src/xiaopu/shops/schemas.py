"""Request and response bodies for shops, their selections and their public pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from xiaopu.kit.money import BasisPoints
from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.kit.text import DisplayName, MultilineText
from xiaopu.models import ShopLevel
from xiaopu.organisations.schemas import INVITE_CODE_PATTERN

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{1,46}[a-z0-9])$"
# "mine" names the owner's own routes (/v1/shops/mine), so no shop may take it.
RESERVED_SLUGS = frozenset({"mine"})


def _not_reserved(slug: str | None) -> str | None:
    if slug in RESERVED_SLUGS:
        raise ValueError(f"the slug {slug!r} is reserved")
    return slug


class ShopFields(RequestModel):
    name: DisplayName | None = Field(default=None, min_length=1, max_length=64, pattern=r"\S")
    slug: Annotated[str | None, AfterValidator(_not_reserved)] = Field(
        default=None,
        pattern=SLUG_PATTERN,
        description="3–48 lowercase letters, digits and hyphens; generated when omitted.",
    )
    blurb: MultilineText | None = Field(
        default=None, max_length=500, description="A few words to buyers, atop the shop's page."
    )


class ShopCreate(ShopFields):
    invite_code: str | None = Field(
        default=None,
        pattern=INVITE_CODE_PATTERN,
        description="A partner organisation's invite code: the shop joins its cohort.",
    )


class ShopUpdate(ShopFields):
    pass


class ShopOut(ResponseModel):
    id: uuid.UUID
    name: str
    slug: str
    blurb: str | None
    level: ShopLevel
    completed_sales: int
    organisation_id: uuid.UUID | None = Field(
        description="The partner organisation whose cohort the shop is in."
    )
    product_limit: int | None = Field(description="Products the shop may carry; null: no limit.")
    product_count: int
    created_at: datetime


class SelectionAdd(RequestModel):
    product_id: uuid.UUID
    blurb: MultilineText | None = Field(default=None, max_length=500)
    markup_bps: BasisPoints = Field(default=0, description="Within the supplier's ceiling.")


class SelectionUpdate(RequestModel):
    blurb: MultilineText | None = Field(default=None, max_length=500)
    markup_bps: BasisPoints | None = None


class SelectionOut(ResponseModel):
    product_id: uuid.UUID
    title: str
    blurb: str | None
    markup_bps: int
    markup_ceiling_bps: int
    on_sale: bool = Field(description="False while the product or its supplier is off sale.")
    created_at: datetime


class PublicVariant(ResponseModel):
    id: uuid.UUID
    options: dict[str, str]
    price_minor: int = Field(description="The shop's price: supplier price plus markup.")
    currency: str


class PublicProduct(ResponseModel):
    id: uuid.UUID
    title: str
    description: str
    blurb: str | None
    image_urls: list[str]
    brand: str | None
    category_id: str
    return_window_days: int
    variants: list[PublicVariant]


class PublicShop(ResponseModel):
    name: str
    slug: str
    blurb: str | None
    level: ShopLevel
