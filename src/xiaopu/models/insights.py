"""Dashboard rollups: daily figures per shop, supplier, product, link and the platform, in local
days of the platform's time zone, and the log of orders whose figures changed."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, Date, Identity, Index, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base

# The link of sales that came through none (a shop page, or an expired token): a key column
# cannot be NULL.
NO_LINK = uuid.UUID(int=0)


class RollupChange(Base):
    """An order whose figures may have changed. Written by triggers on the tables the figures
    come from (insert-only, so writers never wait on one another), taken and folded into the
    rollups by the `insights.rollup` job."""

    __tablename__ = "rollup_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    order_id: Mapped[uuid.UUID]


class _Earnings:
    """The shop's earnings (commission and markup lines) of the orders counted, by the lines'
    current status, and what was taken back of them by refunds."""

    earnings_pending_minor: Mapped[int] = mapped_column(BigInteger)
    earnings_held_minor: Mapped[int] = mapped_column(BigInteger)
    earnings_available_minor: Mapped[int] = mapped_column(BigInteger)
    earnings_paid_minor: Mapped[int] = mapped_column(BigInteger)
    earnings_forfeited_minor: Mapped[int] = mapped_column(BigInteger)
    earnings_reversed_minor: Mapped[int] = mapped_column(BigInteger)


class SalesDaily(_Earnings, Base):
    """Per shop, local day of payment, product, link and currency: what the orders paid that
    day sold, gave back and earned (as of the last rollup)."""

    __tablename__ = "sales_daily"
    __table_args__ = (
        PrimaryKeyConstraint("shop_id", "day", "product_id", "link_id", "currency"),
        Index(None, "supplier_id", "day"),
        # The shops that sold a product (a supplier's dashboard, for the products it shows).
        Index("ix_sales_daily_product_day", "product_id", "day"),
    )

    shop_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    product_id: Mapped[uuid.UUID]
    link_id: Mapped[uuid.UUID]
    currency: Mapped[str] = mapped_column(String(3))
    supplier_id: Mapped[uuid.UUID]
    orders: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer)
    gmv_minor: Mapped[int] = mapped_column(BigInteger)
    sales_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_units: Mapped[int] = mapped_column(Integer)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    completed_units: Mapped[int] = mapped_column(Integer)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)


class ShopDaily(_Earnings, Base):
    """Per shop, local day of payment and currency: orders (each once), completed ones, GMV,
    money refunded and earnings."""

    __tablename__ = "shop_daily"
    # By day: the platform's day sums every shop's.
    __table_args__ = (PrimaryKeyConstraint("shop_id", "day", "currency"), Index(None, "day"))

    shop_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    orders: Mapped[int] = mapped_column(Integer)
    completed_orders: Mapped[int] = mapped_column(Integer)
    gmv_minor: Mapped[int] = mapped_column(BigInteger)
    refunds_minor: Mapped[int] = mapped_column(BigInteger)


class ShopDailyTraffic(Base):
    """Per shop and local day: clicks and unique visitors over all its links, kept by the click
    flusher in the transaction that stores the clicks."""

    __tablename__ = "shop_daily_traffic"
    __table_args__ = (PrimaryKeyConstraint("shop_id", "day"), Index(None, "day"))

    shop_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    clicks: Mapped[int] = mapped_column(Integer)
    unique_visitors: Mapped[int] = mapped_column(Integer)


class SupplierDaily(Base):
    """Per supplier, local day of payment and currency: supplier orders (each once), units,
    GMV, sales at the supplier's price, what was given back, and platform fees."""

    __tablename__ = "supplier_daily"
    __table_args__ = (PrimaryKeyConstraint("supplier_id", "day", "currency"), Index(None, "day"))

    supplier_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    orders: Mapped[int] = mapped_column(Integer)
    completed_orders: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer)
    gmv_minor: Mapped[int] = mapped_column(BigInteger)
    sales_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_units: Mapped[int] = mapped_column(Integer)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)


class SupplierProductDaily(Base):
    """Per supplier, local day of payment, product and currency: the supplier's sales of the
    product over every shop and link, so a supplier's per-product dashboard reads a few rows a
    product, kept together, instead of the product's rows of every shop."""

    __tablename__ = "supplier_product_daily"
    __table_args__ = (PrimaryKeyConstraint("supplier_id", "day", "product_id", "currency"),)

    supplier_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    product_id: Mapped[uuid.UUID]
    currency: Mapped[str] = mapped_column(String(3))
    orders: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer)
    refunded_units: Mapped[int] = mapped_column(Integer)
    gmv_minor: Mapped[int] = mapped_column(BigInteger)
    sales_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)


class VariantDaily(Base):
    """Units of a variant sold (paid) per local day, and given back: what a variant's stock
    cover is computed from."""

    __tablename__ = "variant_daily"
    __table_args__ = (
        PrimaryKeyConstraint("variant_id", "day"),
        Index(None, "supplier_id", "day"),
    )

    variant_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    supplier_id: Mapped[uuid.UUID]
    units: Mapped[int] = mapped_column(Integer)
    refunded_units: Mapped[int] = mapped_column(Integer)


class PlatformDaily(Base):
    """Per local day: shops and suppliers that joined, those with a paid order, and traffic."""

    __tablename__ = "platform_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    new_shops: Mapped[int] = mapped_column(Integer)
    new_suppliers: Mapped[int] = mapped_column(Integer)
    active_shops: Mapped[int] = mapped_column(Integer)
    active_suppliers: Mapped[int] = mapped_column(Integer)
    clicks: Mapped[int] = mapped_column(Integer)
    unique_visitors: Mapped[int] = mapped_column(Integer)


class PlatformSalesDaily(Base):
    """Per local day and currency: every shop's orders, GMV, refunds and the platform's fees."""

    __tablename__ = "platform_sales_daily"
    __table_args__ = (PrimaryKeyConstraint("day", "currency"),)

    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    orders: Mapped[int] = mapped_column(Integer)
    completed_orders: Mapped[int] = mapped_column(Integer)
    gmv_minor: Mapped[int] = mapped_column(BigInteger)
    refunds_minor: Mapped[int] = mapped_column(BigInteger)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)
