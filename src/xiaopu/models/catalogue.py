"""The catalogue: the platform's category tree, suppliers' products and their variants (SKUs)."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, IdMixin, TimestampMixin, text_enum


class ProductStatus(enum.StrEnum):
    draft = "draft"
    active = "active"
    archived = "archived"


class Category(Base):
    """A node of the fixed platform category tree (seeded by a migration)."""

    __tablename__ = "categories"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("categories.id"))
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))


class Product(IdMixin, TimestampMixin, Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("supplier_id", "ref"),
        CheckConstraint("commission_bps BETWEEN 0 AND 10000", name="commission_bps_range"),
        CheckConstraint("markup_ceiling_bps BETWEEN 0 AND 10000", name="markup_ceiling_range"),
        CheckConstraint("return_window_days BETWEEN 0 AND 90", name="return_window_range"),
        Index(None, "status", "category_id"),
        Index("ix_products_search", "search", postgresql_using="gin"),
        # The catalogue's sorts, on what it shows (active products), with the keyset's id
        # tiebreaker in its direction: a page is read off the index with no sort.
        Index(
            "ix_products_by_commission",
            text("max_commission_bps DESC"),
            text("id DESC"),
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "ix_products_by_price",
            "min_price_minor",
            text("id DESC"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    # The supplier's own product code; bulk upserts match on it.
    ref: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    image_urls: Mapped[list[str]] = mapped_column(ARRAY(String(2048)))
    category_id: Mapped[str] = mapped_column(ForeignKey("categories.id"))
    brand: Mapped[str | None] = mapped_column(String(80))
    return_window_days: Mapped[int] = mapped_column(SmallInteger, default=7)
    commission_bps: Mapped[int] = mapped_column(SmallInteger)
    markup_ceiling_bps: Mapped[int] = mapped_column(SmallInteger, default=0)
    status: Mapped[ProductStatus] = mapped_column(
        text_enum(ProductStatus, "product_status"), default=ProductStatus.draft
    )
    # Search terms (words, and CJK unigrams and bigrams) made by catalogue/search.py.
    search_terms: Mapped[str] = mapped_column(Text, default="")
    search: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('simple', search_terms)", persisted=True)
    )
    # Highest variant commission and lowest price, kept for sorting the catalogue.
    max_commission_bps: Mapped[int] = mapped_column(SmallInteger, default=0)
    min_price_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class Variant(IdMixin, TimestampMixin, Base):
    __tablename__ = "variants"
    __table_args__ = (
        UniqueConstraint("supplier_id", "sku"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint(
            "commission_bps IS NULL OR commission_bps BETWEEN 0 AND 10000",
            name="commission_bps_range",
        ),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        Index(None, "product_id"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer, default=0)
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    commission_bps: Mapped[int | None] = mapped_column(SmallInteger)
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=0)
