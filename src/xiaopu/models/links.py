"""Share links, their clicks (partitioned by month) and the daily counters link stats read."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin


class ShareLink(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "share_links"
    __table_args__ = (Index(None, "shop_id", "id"),)

    code: Mapped[str] = mapped_column(String(16), unique=True)
    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    # None: a link to the whole shop.
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE")
    )
    label: Mapped[str | None] = mapped_column(String(80))
    disabled_at: Mapped[datetime | None]


class Click(Base):
    """One opening of a share link by a person. Written in batches with COPY; partitioned by
    month on created_at (partitions are made by the `links.partitions` schedule)."""

    __tablename__ = "clicks"
    __table_args__ = (
        PrimaryKeyConstraint("id", "created_at"),
        Index(None, "link_id", "created_at"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[uuid.UUID]
    created_at: Mapped[datetime]
    # No foreign keys: clicks are history, written in bulk, and must not block link deletion.
    link_id: Mapped[uuid.UUID]
    shop_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID | None]
    visitor_id: Mapped[str] = mapped_column(String(44))
    referrer_host: Mapped[str | None] = mapped_column(String(255))
    agent_class: Mapped[str] = mapped_column(String(16))
    # A visitor's later opens of the same link within the hour: kept, but not counted as clicks.
    is_repeat: Mapped[bool]


class LinkDailyStats(Base):
    """A link's clicks and unique visitors per local day (of the platform's time zone), with
    its shop and product so a shop's dashboard reads them by shop and day."""

    __tablename__ = "link_daily_stats"
    __table_args__ = (
        PrimaryKeyConstraint("link_id", "day"),
        Index(None, "shop_id", "day"),
    )

    link_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    shop_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID | None]
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    unique_visitors: Mapped[int] = mapped_column(Integer, default=0)


class LinkDailyVisitor(Base):
    """Which visitors opened a link on a day, so unique visitors are counted once."""

    __tablename__ = "link_daily_visitors"
    __table_args__ = (PrimaryKeyConstraint("link_id", "day", "visitor_id"),)

    link_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    visitor_id: Mapped[str] = mapped_column(String(44))
