"""Request and response bodies for campaigns, their shops, leaderboard and results."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, Field, HttpUrl, field_validator

from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.models import CampaignStatus, Recruitment

CURRENCY = r"^[A-Z]{3}$"
MAX_ITEMS = 50
MAX_BUDGETS = 4


class Brief(RequestModel):
    """What shopkeepers get to sell with: selling points, images and a suggested share text."""

    selling_points: list[str] = Field(default_factory=list, max_length=10)
    images: list[HttpUrl] = Field(default_factory=list, max_length=9)
    share_text: str = Field(default="", max_length=500)

    @field_validator("selling_points")
    @classmethod
    def _short(cls, points: list[str]) -> list[str]:
        for point in points:
            if not 1 <= len(point) <= 200:
                raise ValueError("a selling point is 1 to 200 characters")
        return points


class BriefOut(ResponseModel):
    selling_points: list[str]
    images: list[str]
    share_text: str


class ItemIn(RequestModel):
    variant_id: uuid.UUID
    price_minor: int = Field(gt=0, description="The campaign price, not above the regular one.")
    allocated_units: int = Field(gt=0, le=1_000_000)


class BudgetIn(RequestModel):
    currency: str = Field(pattern=CURRENCY)
    amount_minor: int = Field(ge=0, le=10**13)


class CampaignIn(RequestModel):
    title: str = Field(min_length=1, max_length=120)
    brief: Brief = Field(default_factory=Brief)
    recruitment: Recruitment = Recruitment.open
    boost_bps: int = Field(
        ge=0, le=10000, description="Extra commission on top of each product's own."
    )
    budgets: list[BudgetIn] = Field(
        default_factory=list,
        max_length=MAX_BUDGETS,
        description="The most boost paid in total, per currency of the items.",
    )
    warm_up_at: AwareDatetime
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="At most 14 days after starts_at.")
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


class ItemOut(ResponseModel):
    variant_id: uuid.UUID
    product_id: uuid.UUID
    currency: str
    price_minor: int
    regular_price_minor: int
    allocated_units: int
    units_left: int | None = Field(
        description="Units not taken yet, while the campaign holds them (scheduled to live)."
    )


class BudgetOut(ResponseModel):
    currency: str
    budget_minor: int
    left_minor: int | None = Field(description="Not reserved yet; null for a draft.")
    released_minor: int | None = Field(description="Released at settlement.")


class CampaignOut(ResponseModel):
    id: uuid.UUID
    supplier_id: uuid.UUID
    title: str
    brief: BriefOut
    recruitment: Recruitment
    boost_bps: int
    status: CampaignStatus
    warm_up_at: datetime
    starts_at: datetime
    ends_at: datetime
    scheduled_at: datetime | None
    ended_at: datetime | None
    ended_early: bool
    budget_exhausted_at: datetime | None
    settled_at: datetime | None
    results_refreshed_at: datetime | None
    items: list[ItemOut]
    budgets: list[BudgetOut]
    created_at: datetime


class ShopCampaignOut(ResponseModel):
    """A campaign as a shop sees it: terms, brief and whether it has signed up."""

    id: uuid.UUID
    supplier_id: uuid.UUID
    title: str
    brief: BriefOut
    boost_bps: int
    status: CampaignStatus
    warm_up_at: datetime
    starts_at: datetime
    ends_at: datetime
    invited: bool
    joined_at: datetime | None
    can_join: bool = Field(description="Recruitment is on and the shop may sign up.")
    items: list[ItemOut]


class InvitationsIn(RequestModel):
    shop_ids: list[uuid.UUID] = Field(default_factory=list, max_length=500)
    from_recommendations: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Also invite up to this many of each item's product's recommended shops.",
    )


class InvitationsOut(ResponseModel):
    invited: list[uuid.UUID] = Field(description="Shops invited by this request.")
    unknown: list[uuid.UUID] = Field(description="Ids named that are no shop.")


class StandingOut(ResponseModel):
    rank: int
    shop_id: uuid.UUID
    shop_name: str
    shop_slug: str
    currency: str
    orders: int
    units: int
    gmv_minor: int
    refunds_minor: int
    boost_minor: int


class LeaderboardOut(ResponseModel):
    campaign_id: uuid.UUID
    refreshed_at: datetime | None = Field(description="When the figures were last refreshed.")
    items: list[StandingOut]
    next_cursor: str | None


class ResultLine(ResponseModel):
    currency: str
    orders: int
    units: int
    gmv_minor: int
    refunded_units: int
    refunds_minor: int
    boost_minor: int = Field(description="Boost paid: accrued less reversed, as in the ledger.")
    unboosted_units: int = Field(description="Units sold when the budget could not cover a boost.")


class ShopResult(ResultLine):
    shop_id: uuid.UUID


class ProductResult(ResultLine):
    product_id: uuid.UUID


class ResultsOut(ResponseModel):
    campaign_id: uuid.UUID
    status: CampaignStatus
    refreshed_at: datetime | None
    budgets: list[BudgetOut]
    by_shop: list[ShopResult] = Field(description="At most 500 shops, by GMV.")
    by_product: list[ProductResult]
