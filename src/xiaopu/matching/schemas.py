"""Response bodies for recommendations, recommended shops and invitations."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import Field

from xiaopu.kit.schema import ResponseModel
from xiaopu.models import InvitationStatus


class ReasonCode(enum.StrEnum):
    category_affinity = "category_affinity"
    price_band_affinity = "price_band_affinity"
    similar_shops = "similar_shops"
    conversion = "conversion"
    return_rate = "return_rate"
    commission = "commission"
    in_stock = "in_stock"
    sales_volume = "sales_volume"


class Reason(ResponseModel):
    """One factor of the score: a stable code, its figures, and a sentence built from them (in
    English; a client may render its own from the code and figures)."""

    code: ReasonCode
    figures: dict[str, int] = Field(
        description="The numbers behind the reason; rates in basis points, money in minor units."
    )
    text: str


class RecommendedProduct(ResponseModel):
    rank: int = Field(description="Rank in the last computed list (gaps: items left out since).")
    score: int = Field(description="The product of the reasons' factors (README: Matching).")
    product_id: uuid.UUID
    supplier_id: uuid.UUID
    title: str
    image_url: str | None
    category_id: str
    price_band: int = Field(ge=0, le=4)
    min_price_minor: int
    currency: str | None
    reasons: list[Reason]
    computed_at: datetime


class ShopProfile(ResponseModel):
    """What a shop did over the window: its capability, as a supplier judges it."""

    window_days: int
    visitors: int = Field(description="Audience size: unique visitors of its links.")
    orders: int
    units: int
    returned_units: int
    conversion_bps: int = Field(description="Orders per unique visitor.")
    return_rate_bps: int = Field(description="Units returned per unit sold.")
    category_units: int = Field(description="Units it sold in the product's category.")
    category_clicks: int = Field(description="Clicks on its links to the product's category.")
    category_share_bps: int = Field(description="Its (smoothed) share of activity there.")
    band_share_bps: int = Field(description="Its (smoothed) share in the product's price band.")
    orders_7d: int = Field(description="Recent activity: orders in the last 7 local days.")
    last_order_at: datetime | None


class RecommendedShopOut(ResponseModel):
    rank: int
    score: int
    shop_id: uuid.UUID
    name: str
    slug: str
    profile: ShopProfile
    reasons: list[Reason]
    invitation_status: InvitationStatus | None = Field(
        description="Your invitation to this shop for this product, if you sent one."
    )
    computed_at: datetime


class InvitationOut(ResponseModel):
    """An invitation as the supplier that sent it sees it."""

    id: uuid.UUID
    supplier_id: uuid.UUID
    product_id: uuid.UUID
    shop_id: uuid.UUID
    status: InvitationStatus
    created_at: datetime
    decided_at: datetime | None


class ShopInvitationOut(ResponseModel):
    """An invitation as the shop that received it sees it."""

    id: uuid.UUID
    status: InvitationStatus
    product_id: uuid.UUID
    title: str
    image_url: str | None
    supplier_id: uuid.UUID
    supplier_name: str
    created_at: datetime
    decided_at: datetime | None
