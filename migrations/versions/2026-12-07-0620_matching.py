"""matching: products recommended to shops, shops recommended per category and price band
(both written whole by the nightly `matching.compute` job), and suppliers' invitations

Revision ID: e20a7c4b0620
Revises: e20da5b0a600
Create Date: 2026-12-07 06:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e20a7c4b0620"
down_revision: str | None = "e20da5b0a600"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recommended_shops",
        sa.Column("category_id", sa.String(length=64), nullable=False),
        sa.Column("price_band", sa.SmallInteger(), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("category_units", sa.Integer(), nullable=False),
        sa.Column("category_clicks", sa.Integer(), nullable=False),
        sa.Column("category_share_bps", sa.SmallInteger(), nullable=False),
        sa.Column("band_share_bps", sa.SmallInteger(), nullable=False),
        sa.Column("activity", sa.BigInteger(), nullable=False),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("returned_units", sa.Integer(), nullable=False),
        sa.Column("conversion_bps", sa.SmallInteger(), nullable=False),
        sa.Column("return_rate_bps", sa.SmallInteger(), nullable=False),
        sa.Column("orders_7d", sa.Integer(), nullable=False),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_days", sa.SmallInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "category_share_bps BETWEEN 0 AND 10000 AND band_share_bps BETWEEN 0 AND 10000 "
            "AND conversion_bps BETWEEN 0 AND 10000 AND return_rate_bps BETWEEN 0 AND 10000",
            name=op.f("ck_recommended_shops_rates_in_range"),
        ),
        sa.CheckConstraint(
            "price_band BETWEEN 0 AND 4", name=op.f("ck_recommended_shops_price_band_range")
        ),
        sa.CheckConstraint("rank >= 1", name=op.f("ck_recommended_shops_rank_positive")),
        sa.PrimaryKeyConstraint(
            "category_id", "price_band", "rank", name=op.f("pk_recommended_shops")
        ),
    )
    op.create_table(
        "recommendation_invitations",
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "accepted",
                "dismissed",
                name="invitation_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(status = 'pending') = (decided_at IS NULL)",
            name=op.f("ck_recommendation_invitations_decided_when_not_pending"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_recommendation_invitations_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_recommendation_invitations_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_recommendation_invitations_supplier_id_suppliers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation_invitations")),
        sa.UniqueConstraint(
            "product_id", "shop_id", name=op.f("uq_recommendation_invitations_product_id_shop_id")
        ),
    )
    op.create_index(
        op.f("ix_recommendation_invitations_shop_id"),
        "recommendation_invitations",
        ["shop_id", "id"],
        unique=False,
    )
    op.create_table(
        "shop_recommendations",
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("category_id", sa.String(length=64), nullable=False),
        sa.Column("category_units", sa.Integer(), nullable=False),
        sa.Column("category_clicks", sa.Integer(), nullable=False),
        sa.Column("category_share_bps", sa.SmallInteger(), nullable=False),
        sa.Column("price_band", sa.SmallInteger(), nullable=False),
        sa.Column("band_units", sa.Integer(), nullable=False),
        sa.Column("band_clicks", sa.Integer(), nullable=False),
        sa.Column("band_share_bps", sa.SmallInteger(), nullable=False),
        sa.Column("segment_category_id", sa.String(length=64), nullable=False),
        sa.Column("peer_shops", sa.Integer(), nullable=False),
        sa.Column("segment_shops", sa.Integer(), nullable=False),
        sa.Column("peer_share_bps", sa.SmallInteger(), nullable=False),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("conversion_bps", sa.SmallInteger(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("returned_units", sa.Integer(), nullable=False),
        sa.Column("return_rate_bps", sa.SmallInteger(), nullable=False),
        sa.Column("commission_bps", sa.SmallInteger(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=False),
        sa.Column("window_days", sa.SmallInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "category_share_bps BETWEEN 0 AND 10000 AND band_share_bps BETWEEN 0 AND 10000 "
            "AND peer_share_bps BETWEEN 0 AND 10000 AND conversion_bps BETWEEN 0 AND 10000 "
            "AND return_rate_bps BETWEEN 0 AND 10000 AND commission_bps BETWEEN 0 AND 10000",
            name=op.f("ck_shop_recommendations_rates_in_range"),
        ),
        sa.CheckConstraint(
            "price_band BETWEEN 0 AND 4", name=op.f("ck_shop_recommendations_price_band_range")
        ),
        sa.CheckConstraint("rank >= 1", name=op.f("ck_shop_recommendations_rank_positive")),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_shop_recommendations_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("shop_id", "rank", name=op.f("pk_shop_recommendations")),
    )


def downgrade() -> None:
    op.drop_table("shop_recommendations")
    op.drop_index(
        op.f("ix_recommendation_invitations_shop_id"), table_name="recommendation_invitations"
    )
    op.drop_table("recommendation_invitations")
    op.drop_table("recommended_shops")
