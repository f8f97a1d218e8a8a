"""Matching (货配人): products recommended to shops, shops to products, and suppliers' invitations.

The two recommendation tables are derived: the `matching.compute` job replaces them whole each
night (matching/compute.py), and requests only read them, re-checking at read time what may
have changed since (a product taken off sale or out of stock, a product a shop picked since).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, text_enum

_BPS = "BETWEEN 0 AND 10000"


class ShopRecommendation(Base):
    """One product recommended to one shop, at its rank, with every factor of its score."""

    __tablename__ = "shop_recommendations"
    __table_args__ = (
        PrimaryKeyConstraint("shop_id", "rank"),
        CheckConstraint("rank >= 1", name="rank_positive"),
        CheckConstraint("price_band BETWEEN 0 AND 4", name="price_band_range"),
        CheckConstraint(
            f"category_share_bps {_BPS} AND band_share_bps {_BPS} AND peer_share_bps {_BPS} "
            f"AND conversion_bps {_BPS} AND return_rate_bps {_BPS} AND commission_bps {_BPS}",
            name="rates_in_range",
        ),
    )

    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(SmallInteger)
    # No foreign key: the row is derived and read through a join that re-checks the product.
    product_id: Mapped[uuid.UUID]
    score: Mapped[int] = mapped_column(BigInteger)
    category_id: Mapped[str] = mapped_column(String(64))
    # The shop's own activity in the product's category and price band over the window.
    category_units: Mapped[int] = mapped_column(Integer)
    category_clicks: Mapped[int] = mapped_column(Integer)
    category_share_bps: Mapped[int] = mapped_column(SmallInteger)
    price_band: Mapped[int] = mapped_column(SmallInteger)
    band_units: Mapped[int] = mapped_column(Integer)
    band_clicks: Mapped[int] = mapped_column(Integer)
    band_share_bps: Mapped[int] = mapped_column(SmallInteger)
    # Shops like this one: those whose buyers favour the same category (its segment).
    segment_category_id: Mapped[str] = mapped_column(String(64))
    peer_shops: Mapped[int] = mapped_column(Integer)
    segment_shops: Mapped[int] = mapped_column(Integer)
    peer_share_bps: Mapped[int] = mapped_column(SmallInteger)
    # The product across every shop over the window.
    visitors: Mapped[int] = mapped_column(Integer)
    orders: Mapped[int] = mapped_column(Integer)
    conversion_bps: Mapped[int] = mapped_column(SmallInteger)
    units: Mapped[int] = mapped_column(Integer)
    returned_units: Mapped[int] = mapped_column(Integer)
    return_rate_bps: Mapped[int] = mapped_column(SmallInteger)
    commission_bps: Mapped[int] = mapped_column(SmallInteger)
    stock: Mapped[int] = mapped_column(BigInteger)
    window_days: Mapped[int] = mapped_column(SmallInteger)
    computed_at: Mapped[datetime]


class RecommendedShop(Base):
    """A shop likely to sell products of one category and price band, at its rank.

    A shop's score for a product depends on the product only through its category and price
    band, so one list serves every product of the cell; a request leaves out the shops that
    already carry its product."""

    __tablename__ = "recommended_shops"
    __table_args__ = (
        PrimaryKeyConstraint("category_id", "price_band", "rank"),
        CheckConstraint("rank >= 1", name="rank_positive"),
        CheckConstraint("price_band BETWEEN 0 AND 4", name="price_band_range"),
        CheckConstraint(
            f"category_share_bps {_BPS} AND band_share_bps {_BPS} AND conversion_bps {_BPS} "
            f"AND return_rate_bps {_BPS}",
            name="rates_in_range",
        ),
    )

    category_id: Mapped[str] = mapped_column(String(64))
    price_band: Mapped[int] = mapped_column(SmallInteger)
    rank: Mapped[int] = mapped_column(SmallInteger)
    # No foreign key: derived, read through a join with shops.
    shop_id: Mapped[uuid.UUID]
    score: Mapped[int] = mapped_column(BigInteger)
    category_units: Mapped[int] = mapped_column(Integer)
    category_clicks: Mapped[int] = mapped_column(Integer)
    category_share_bps: Mapped[int] = mapped_column(SmallInteger)
    band_share_bps: Mapped[int] = mapped_column(SmallInteger)
    # The shop's capability profile over the window.
    activity: Mapped[int] = mapped_column(BigInteger)
    visitors: Mapped[int] = mapped_column(Integer)
    orders: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer)
    returned_units: Mapped[int] = mapped_column(Integer)
    conversion_bps: Mapped[int] = mapped_column(SmallInteger)
    return_rate_bps: Mapped[int] = mapped_column(SmallInteger)
    orders_7d: Mapped[int] = mapped_column(Integer)
    last_order_at: Mapped[datetime | None]
    window_days: Mapped[int] = mapped_column(SmallInteger)
    computed_at: Mapped[datetime]


class InvitationStatus(enum.StrEnum):
    pending = "pending"
    accepted = "accepted"
    dismissed = "dismissed"


class Invitation(IdMixin, CreatedAtMixin, Base):
    """A supplier's invitation to a recommended shop to carry one of its products. One per
    product and shop, ever: a dismissed invitation is not sent again."""

    __tablename__ = "recommendation_invitations"
    __table_args__ = (
        UniqueConstraint("product_id", "shop_id"),
        # A shop's invitations, newest first.
        Index(None, "shop_id", "id"),
        CheckConstraint(
            "(status = 'pending') = (decided_at IS NULL)", name="decided_when_not_pending"
        ),
    )

    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    status: Mapped[InvitationStatus] = mapped_column(
        text_enum(InvitationStatus, "invitation_status"), default=InvitationStatus.pending
    )
    decided_at: Mapped[datetime | None]
