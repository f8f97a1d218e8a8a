"""campaigns (超级品牌团): campaigns, their items, budgets, counter shards, shops and results;
order lines sold at campaign terms; the boost commission part

Revision ID: e21c0a9a0700
Revises: e20da5b0a640
Create Date: 2026-12-07 07:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e21c0a9a0700"
down_revision: str | None = "e20da5b0a640"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("brief", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "recruitment",
            sa.Enum(
                "open",
                "invited",
                name="recruitment",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("boost_bps", sa.SmallInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "scheduled",
                "warm_up",
                "live",
                "ended",
                "settled",
                name="campaign_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("warm_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_early", sa.Boolean(), nullable=False),
        sa.Column("starting_announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("budget_exhausted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("results_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "ends_at <= starts_at + interval '14 days'", name=op.f("ck_campaigns_at_most_14_days")
        ),
        sa.CheckConstraint(
            "boost_bps BETWEEN 0 AND 10000", name=op.f("ck_campaigns_boost_bps_range")
        ),
        sa.CheckConstraint(
            "warm_up_at <= starts_at AND starts_at < ends_at",
            name=op.f("ck_campaigns_times_in_order"),
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"], ["suppliers.id"], name=op.f("fk_campaigns_supplier_id_suppliers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(
        op.f("ix_campaigns_supplier_id"), "campaigns", ["supplier_id", "id"], unique=False
    )
    op.create_index(
        "ix_campaigns_unsettled",
        "campaigns",
        ["status"],
        unique=False,
        postgresql_where="status <> 'settled'",
    )
    op.create_table(
        "campaign_budget_shards",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("left_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "left_minor >= 0", name=op.f("ck_campaign_budget_shards_left_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_budget_shards_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_budget_shards")),
        sa.UniqueConstraint(
            "campaign_id",
            "currency",
            "shard",
            name=op.f("uq_campaign_budget_shards_campaign_id_currency_shard"),
        ),
    )
    op.create_table(
        "campaign_budgets",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("budget_minor", sa.BigInteger(), nullable=False),
        sa.Column("released_minor", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "budget_minor >= 0", name=op.f("ck_campaign_budgets_budget_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_budgets_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "currency", name=op.f("pk_campaign_budgets")),
    )
    op.create_table(
        "campaign_results",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("gmv_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_units", sa.Integer(), nullable=False),
        sa.Column("refunds_minor", sa.BigInteger(), nullable=False),
        sa.Column("boost_minor", sa.BigInteger(), nullable=False),
        sa.Column("unboosted_units", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_results_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "shop_id", "product_id", "currency", name=op.f("pk_campaign_results")
        ),
    )
    op.create_table(
        "campaign_shops",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invited_via", sa.String(length=20), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_shops_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_campaign_shops_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "shop_id", name=op.f("pk_campaign_shops")),
    )
    op.create_index(op.f("ix_campaign_shops_shop_id"), "campaign_shops", ["shop_id"], unique=False)
    op.create_table(
        "campaign_items",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("variant_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("regular_price_minor", sa.BigInteger(), nullable=False),
        sa.Column("allocated_units", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "allocated_units > 0", name=op.f("ck_campaign_items_allocated_positive")
        ),
        sa.CheckConstraint(
            "price_minor <= regular_price_minor", name=op.f("ck_campaign_items_not_above_regular")
        ),
        sa.CheckConstraint("price_minor > 0", name=op.f("ck_campaign_items_price_positive")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_items_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_campaign_items_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["variants.id"], name=op.f("fk_campaign_items_variant_id_variants")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "variant_id", name=op.f("pk_campaign_items")),
    )
    op.create_index(
        op.f("ix_campaign_items_variant_id"), "campaign_items", ["variant_id"], unique=False
    )
    op.create_table(
        "campaign_unit_shards",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("variant_id", sa.Uuid(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("units_left", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "units_left >= 0", name=op.f("ck_campaign_unit_shards_units_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_unit_shards_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variants.id"],
            name=op.f("fk_campaign_unit_shards_variant_id_variants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_unit_shards")),
        sa.UniqueConstraint(
            "campaign_id",
            "variant_id",
            "shard",
            name=op.f("uq_campaign_unit_shards_campaign_id_variant_id_shard"),
        ),
    )
    op.create_index(
        op.f("ix_campaign_unit_shards_variant_id"),
        "campaign_unit_shards",
        ["variant_id"],
        unique=False,
    )
    op.add_column("order_lines", sa.Column("campaign_id", sa.Uuid(), nullable=True))
    # Constant defaults fill the lines sold so far without rewriting the table, and stay: a
    # line written by anything but checkout (a data fix, a bulk load) is no campaign line.
    op.add_column(
        "order_lines",
        sa.Column("boost_bps", sa.SmallInteger(), nullable=False, server_default="0"),
    )
    op.add_column(
        "order_lines",
        sa.Column("boost_withheld", sa.Boolean(), nullable=False, server_default="false"),
    )
    op.create_check_constraint(
        op.f("ck_order_lines_boost_bps_range"), "order_lines", "boost_bps BETWEEN 0 AND 10000"
    )
    op.create_check_constraint(
        op.f("ck_order_lines_boost_only_on_campaign_lines"),
        "order_lines",
        "campaign_id IS NOT NULL OR (boost_bps = 0 AND NOT boost_withheld)",
    )
    op.drop_constraint(op.f("ck_commissions_commission_kind"), "commissions", type_="check")
    op.create_check_constraint(
        op.f("ck_commissions_commission_kind"),
        "commissions",
        "kind IN ('commission', 'boost', 'markup', 'platform_fee', 'supplier_share', 'shipping')",
    )
    op.create_index(
        "ix_order_lines_campaign_id",
        "order_lines",
        ["campaign_id"],
        unique=False,
        postgresql_where="campaign_id IS NOT NULL",
    )
    op.create_foreign_key(
        op.f("fk_order_lines_campaign_id_campaigns"),
        "order_lines",
        "campaigns",
        ["campaign_id"],
        ["id"],
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_commissions_commission_kind"), "commissions", type_="check")
    op.create_check_constraint(
        op.f("ck_commissions_commission_kind"),
        "commissions",
        "kind IN ('commission', 'markup', 'platform_fee', 'supplier_share', 'shipping')",
    )
    op.drop_constraint(
        op.f("ck_order_lines_boost_only_on_campaign_lines"), "order_lines", type_="check"
    )
    op.drop_constraint(op.f("ck_order_lines_boost_bps_range"), "order_lines", type_="check")
    op.drop_constraint(
        op.f("fk_order_lines_campaign_id_campaigns"), "order_lines", type_="foreignkey"
    )
    op.drop_index(
        "ix_order_lines_campaign_id",
        table_name="order_lines",
        postgresql_where="campaign_id IS NOT NULL",
    )
    op.drop_column("order_lines", "boost_withheld")
    op.drop_column("order_lines", "boost_bps")
    op.drop_column("order_lines", "campaign_id")
    op.drop_index(op.f("ix_campaign_unit_shards_variant_id"), table_name="campaign_unit_shards")
    op.drop_table("campaign_unit_shards")
    op.drop_index(op.f("ix_campaign_items_variant_id"), table_name="campaign_items")
    op.drop_table("campaign_items")
    op.drop_index(op.f("ix_campaign_shops_shop_id"), table_name="campaign_shops")
    op.drop_table("campaign_shops")
    op.drop_table("campaign_results")
    op.drop_table("campaign_budgets")
    op.drop_table("campaign_budget_shards")
    op.drop_index(
        "ix_campaigns_unsettled", table_name="campaigns", postgresql_where="status <> 'settled'"
    )
    op.drop_index(op.f("ix_campaigns_supplier_id"), table_name="campaigns")
    op.drop_table("campaigns")
