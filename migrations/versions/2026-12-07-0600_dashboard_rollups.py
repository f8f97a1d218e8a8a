"""dashboard rollups: daily figures per shop, supplier, product, link, variant and the platform;
the change log triggers fill for the rollup job; link stats carry their shop and product

Revision ID: e20da5b0a600
Revises: d19a7e5c0a10
Create Date: 2026-12-07 06:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e20da5b0a600"
down_revision: str | None = "d19a7e5c0a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every change to what the dashboards count names its order in rollup_changes, in the
# transaction that made it: statement-level triggers (one insert per statement, however many
# rows it changed; set-based jobs included), insert-only so that writers never wait on each
# other. Orders count from payment, so an unpaid order's changes are left out.
LOG_FUNCTION = """
CREATE FUNCTION rollup_log_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_changes (order_id)
    SELECT DISTINCT {order_id} FROM changed {where};
    RETURN NULL;
END $$
"""
LOG_TRIGGER = (
    "CREATE TRIGGER rollup_log AFTER UPDATE ON {table} REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION rollup_log_{table}()"
)
LOGGED = [
    ("orders", "id", "WHERE paid_at IS NOT NULL"),
    ("supplier_orders", "order_id", "WHERE paid_at IS NOT NULL"),
    ("order_lines", "order_id", ""),
    ("commissions", "order_id", ""),
]


def upgrade() -> None:
    op.create_table(
        "platform_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("new_shops", sa.Integer(), nullable=False),
        sa.Column("new_suppliers", sa.Integer(), nullable=False),
        sa.Column("active_shops", sa.Integer(), nullable=False),
        sa.Column("active_suppliers", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("unique_visitors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_platform_daily")),
    )
    op.create_table(
        "platform_sales_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("completed_orders", sa.Integer(), nullable=False),
        sa.Column("gmv_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunds_minor", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "currency", name=op.f("pk_platform_sales_daily")),
    )
    op.create_table(
        "rollup_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_changes")),
    )
    op.create_table(
        "sales_daily",
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("gmv_minor", sa.BigInteger(), nullable=False),
        sa.Column("sales_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_units", sa.Integer(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("completed_units", sa.Integer(), nullable=False),
        sa.Column("platform_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_pending_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_held_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_available_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_forfeited_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_reversed_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "shop_id", "day", "product_id", "link_id", "currency", name=op.f("pk_sales_daily")
        ),
    )
    op.create_index(
        op.f("ix_sales_daily_supplier_id"), "sales_daily", ["supplier_id", "day"], unique=False
    )
    op.create_table(
        "shop_daily",
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("completed_orders", sa.Integer(), nullable=False),
        sa.Column("gmv_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunds_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_pending_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_held_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_available_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_forfeited_minor", sa.BigInteger(), nullable=False),
        sa.Column("earnings_reversed_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "day", "currency", name=op.f("pk_shop_daily")),
    )
    op.create_index(op.f("ix_shop_daily_day"), "shop_daily", ["day"])
    op.create_table(
        "shop_daily_traffic",
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("unique_visitors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "day", name=op.f("pk_shop_daily_traffic")),
    )
    op.create_index(op.f("ix_shop_daily_traffic_day"), "shop_daily_traffic", ["day"])
    op.create_table(
        "supplier_daily",
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("completed_orders", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("gmv_minor", sa.BigInteger(), nullable=False),
        sa.Column("sales_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_units", sa.Integer(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("supplier_id", "day", "currency", name=op.f("pk_supplier_daily")),
    )
    op.create_index(op.f("ix_supplier_daily_day"), "supplier_daily", ["day"])
    op.create_table(
        "variant_daily",
        sa.Column("variant_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("refunded_units", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("variant_id", "day", name=op.f("pk_variant_daily")),
    )
    op.create_index(
        op.f("ix_variant_daily_supplier_id"), "variant_daily", ["supplier_id", "day"], unique=False
    )
    op.add_column("link_daily_stats", sa.Column("shop_id", sa.Uuid(), nullable=True))
    op.add_column("link_daily_stats", sa.Column("product_id", sa.Uuid(), nullable=True))
    # Counters of links deleted since have no shop to show under: they go with their link.
    op.execute(
        "UPDATE link_daily_stats s SET shop_id = l.shop_id, product_id = l.product_id "
        "FROM share_links l WHERE l.id = s.link_id"
    )
    op.execute("DELETE FROM link_daily_stats WHERE shop_id IS NULL")
    op.alter_column("link_daily_stats", "shop_id", nullable=False)
    op.execute(
        "INSERT INTO shop_daily_traffic (shop_id, day, clicks, unique_visitors) "
        "SELECT shop_id, day, sum(clicks), sum(unique_visitors) FROM link_daily_stats "
        "GROUP BY shop_id, day"
    )
    op.create_index(
        op.f("ix_link_daily_stats_shop_id"), "link_daily_stats", ["shop_id", "day"], unique=False
    )
    op.create_index(
        "ix_orders_shop_paid",
        "orders",
        ["shop_id", "paid_at"],
        unique=False,
        postgresql_where="paid_at IS NOT NULL",
    )
    op.create_index(op.f("ix_shops_created_at"), "shops", ["created_at"], unique=False)
    op.create_index(
        "ix_supplier_orders_supplier_paid",
        "supplier_orders",
        ["supplier_id", "paid_at"],
        unique=False,
        postgresql_where="paid_at IS NOT NULL",
    )
    op.create_index(op.f("ix_suppliers_created_at"), "suppliers", ["created_at"], unique=False)
    for table, order_id, where in LOGGED:
        op.execute(LOG_FUNCTION.format(table=table, order_id=order_id, where=where))
        op.execute(LOG_TRIGGER.format(table=table))
    # What was paid before: rolled up by the job's first runs.
    op.execute(
        "INSERT INTO rollup_changes (order_id) SELECT id FROM orders WHERE paid_at IS NOT NULL"
    )


def downgrade() -> None:
    for table, _, _ in reversed(LOGGED):
        op.execute(f"DROP TRIGGER rollup_log ON {table}")
        op.execute(f"DROP FUNCTION rollup_log_{table}()")
    op.drop_index(op.f("ix_suppliers_created_at"), table_name="suppliers")
    op.drop_index(
        "ix_supplier_orders_supplier_paid",
        table_name="supplier_orders",
        postgresql_where="paid_at IS NOT NULL",
    )
    op.drop_index(op.f("ix_shops_created_at"), table_name="shops")
    op.drop_index(
        "ix_orders_shop_paid", table_name="orders", postgresql_where="paid_at IS NOT NULL"
    )
    op.drop_index(op.f("ix_link_daily_stats_shop_id"), table_name="link_daily_stats")
    op.drop_column("link_daily_stats", "product_id")
    op.drop_column("link_daily_stats", "shop_id")
    op.drop_index(op.f("ix_variant_daily_supplier_id"), table_name="variant_daily")
    op.drop_table("variant_daily")
    op.drop_index(op.f("ix_supplier_daily_day"), table_name="supplier_daily")
    op.drop_table("supplier_daily")
    op.drop_index(op.f("ix_shop_daily_traffic_day"), table_name="shop_daily_traffic")
    op.drop_table("shop_daily_traffic")
    op.drop_index(op.f("ix_shop_daily_day"), table_name="shop_daily")
    op.drop_table("shop_daily")
    op.drop_index(op.f("ix_sales_daily_supplier_id"), table_name="sales_daily")
    op.drop_table("sales_daily")
    op.drop_table("rollup_changes")
    op.drop_table("platform_sales_daily")
    op.drop_table("platform_daily")
