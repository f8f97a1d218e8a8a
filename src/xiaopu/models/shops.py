"""Shops (one per person) and the products each has picked."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum


class ShopLevel(enum.StrEnum):
    trial = "trial"
    standard = "standard"


class Shop(IdMixin, TimestampMixin, Base):
    __tablename__ = "shops"
    __table_args__ = (
        CheckConstraint("completed_sales >= 0", name="completed_sales_range"),
        # Shops opened per local day (the operators' dashboard).
        Index(None, "created_at"),
        # An organisation's cohort, a page at a time (shops in no cohort are not indexed).
        Index(
            "ix_shops_organisation_id",
            "organisation_id",
            "id",
            postgresql_where="organisation_id IS NOT NULL",
        ),
        CheckConstraint(
            "(organisation_id IS NULL) = (cohort_joined_at IS NULL)", name="cohort_joined_at"
        ),
    )

    owner_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), unique=True
    )
    name: Mapped[str] = mapped_column(String(64))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    level: Mapped[ShopLevel] = mapped_column(
        text_enum(ShopLevel, "shop_level"), default=ShopLevel.trial
    )
    completed_sales: Mapped[int] = mapped_column(Integer, default=0)
    # The shopkeeper's words at the top of the shop's storefront page.
    blurb: Mapped[str | None] = mapped_column(Text)
    # The partner organisation whose cohort the shop is in (organisations/), and since when.
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id"))
    cohort_joined_at: Mapped[datetime | None]


class ShopProduct(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "shop_products"
    __table_args__ = (
        UniqueConstraint("shop_id", "product_id"),
        CheckConstraint("markup_bps BETWEEN 0 AND 10000", name="markup_bps_range"),
        Index(None, "product_id"),
        # A shop's products, newest first.
        Index(None, "shop_id", "id"),
    )

    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    blurb: Mapped[str | None] = mapped_column(Text)
    markup_bps: Mapped[int] = mapped_column(SmallInteger, default=0)
