"""Brand campaigns (超级品牌团): a supplier's time-boxed sale at campaign prices with a boost.

A campaign's allocated units leave the variants' stock when it is scheduled and wait in
`campaign_unit_shards`; its boost budget waits in `campaign_budget_shards`. Each is split over
several rows so that a flash sale's checkouts, all on one variant, take different rows instead
of queueing on one. An order line sold at campaign terms records the campaign, the boost rate it
reserved and what it took; giving back (expiry, cancel, refunds) adds to a shard again.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum


class CampaignStatus(enum.StrEnum):
    draft = "draft"
    scheduled = "scheduled"  # recruiting shops; its units are set aside
    warm_up = "warm_up"  # shops share; the landing page shows the price and a countdown
    live = "live"
    ended = "ended"  # no more sales at campaign terms; refunds may still come
    settled = "settled"  # every campaign order is final; unused budget released


class Recruitment(enum.StrEnum):
    open = "open"  # every shop may sign up
    invited = "invited"  # invited shops only


class Campaign(IdMixin, TimestampMixin, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("boost_bps BETWEEN 0 AND 10000", name="boost_bps_range"),
        CheckConstraint("warm_up_at <= starts_at AND starts_at < ends_at", name="times_in_order"),
        CheckConstraint("ends_at <= starts_at + interval '14 days'", name="at_most_14_days"),
        Index(None, "supplier_id", "id"),
        # The clock's work: campaigns not yet settled, by status.
        Index("ix_campaigns_unsettled", "status", postgresql_where="status <> 'settled'"),
    )

    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id"))
    title: Mapped[str] = mapped_column(String(120))
    # Selling points, images and suggested share text for shopkeepers.
    brief: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    recruitment: Mapped[Recruitment] = mapped_column(text_enum(Recruitment, "recruitment"))
    boost_bps: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[CampaignStatus] = mapped_column(
        text_enum(CampaignStatus, "campaign_status"), default=CampaignStatus.draft
    )
    warm_up_at: Mapped[datetime]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    scheduled_at: Mapped[datetime | None]
    # When sales at campaign terms stopped: ends_at, or earlier if the supplier ended it.
    ended_at: Mapped[datetime | None]
    ended_early: Mapped[bool] = mapped_column(default=False)
    starting_announced_at: Mapped[datetime | None]
    budget_exhausted_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]
    results_refreshed_at: Mapped[datetime | None]


class CampaignItem(Base):
    """A variant in a campaign: its campaign price and the units allocated at that price."""

    __tablename__ = "campaign_items"
    __table_args__ = (
        PrimaryKeyConstraint("campaign_id", "variant_id"),
        CheckConstraint("price_minor > 0", name="price_positive"),
        CheckConstraint("price_minor <= regular_price_minor", name="not_above_regular"),
        CheckConstraint("allocated_units > 0", name="allocated_positive"),
        Index(None, "variant_id"),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    variant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("variants.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    currency: Mapped[str] = mapped_column(String(3))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    # The variant's price when the campaign was made or scheduled, for "was ¥x".
    regular_price_minor: Mapped[int] = mapped_column(BigInteger)
    allocated_units: Mapped[int] = mapped_column(Integer)


class CampaignBudget(Base):
    """The most boost a campaign pays in one currency, and what settlement released of it."""

    __tablename__ = "campaign_budgets"
    __table_args__ = (
        PrimaryKeyConstraint("campaign_id", "currency"),
        CheckConstraint("budget_minor >= 0", name="budget_not_negative"),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    budget_minor: Mapped[int] = mapped_column(BigInteger)
    released_minor: Mapped[int | None] = mapped_column(BigInteger)


class CampaignUnitShard(Base):
    """Part of a variant's allocated units not yet taken."""

    __tablename__ = "campaign_unit_shards"
    __table_args__ = (
        UniqueConstraint("campaign_id", "variant_id", "shard"),
        CheckConstraint("units_left >= 0", name="units_not_negative"),
        Index(None, "variant_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    variant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("variants.id"))
    shard: Mapped[int] = mapped_column(SmallInteger)
    units_left: Mapped[int] = mapped_column(Integer)


class CampaignBudgetShard(Base):
    """Part of a campaign's boost budget in one currency not yet reserved."""

    __tablename__ = "campaign_budget_shards"
    __table_args__ = (
        UniqueConstraint("campaign_id", "currency", "shard"),
        CheckConstraint("left_minor >= 0", name="left_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    shard: Mapped[int] = mapped_column(SmallInteger)
    left_minor: Mapped[int] = mapped_column(BigInteger)


class CampaignShop(CreatedAtMixin, Base):
    """A shop invited to a campaign, signed up to it, or both."""

    __tablename__ = "campaign_shops"
    __table_args__ = (
        PrimaryKeyConstraint("campaign_id", "shop_id"),
        Index(None, "shop_id"),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    invited_at: Mapped[datetime | None]
    # "shop_id" or "recommendation": where the supplier found the shop.
    invited_via: Mapped[str | None] = mapped_column(String(20))
    joined_at: Mapped[datetime | None]


class CampaignResult(Base):
    """A campaign's sales per shop and product, refreshed by the clock's job (never per
    request): the leaderboard's and the results' source."""

    __tablename__ = "campaign_results"
    __table_args__ = (PrimaryKeyConstraint("campaign_id", "shop_id", "product_id", "currency"),)

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    shop_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID]
    currency: Mapped[str] = mapped_column(String(3))
    orders: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer)
    gmv_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_units: Mapped[int] = mapped_column(Integer)
    refunds_minor: Mapped[int] = mapped_column(BigInteger)
    boost_minor: Mapped[int] = mapped_column(BigInteger)  # boost accrued less reversed
    unboosted_units: Mapped[int] = mapped_column(Integer)
