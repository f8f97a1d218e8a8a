"""supplier product rollup: a supplier's sales per product and local day over every shop, and
sales_daily by product

Revision ID: e20da5b0a640
Revises: e2a9c4f10610
Create Date: 2026-12-07 06:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e20da5b0a640"
down_revision: str | None = "e2a9c4f10610"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "supplier_product_daily",
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("refunded_units", sa.Integer(), nullable=False),
        sa.Column("gmv_minor", sa.BigInteger(), nullable=False),
        sa.Column("sales_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "supplier_id", "day", "product_id", "currency", name=op.f("pk_supplier_product_daily")
        ),
    )
    op.create_index(
        "ix_sales_daily_product_day", "sales_daily", ["product_id", "day"], unique=False
    )
    # What is rolled up already, summed over shops and links (an order has one of each, so its
    # count adds up too); the rollup keeps it from here.
    op.execute(
        "INSERT INTO supplier_product_daily (supplier_id, day, product_id, currency, orders, "
        "units, refunded_units, gmv_minor, sales_minor, refunded_minor, platform_fee_minor) "
        "SELECT supplier_id, day, product_id, currency, sum(orders), sum(units), "
        "sum(refunded_units), sum(gmv_minor), sum(sales_minor), sum(refunded_minor), "
        "sum(platform_fee_minor) FROM sales_daily GROUP BY supplier_id, day, product_id, currency"
    )


def downgrade() -> None:
    op.drop_index("ix_sales_daily_product_day", table_name="sales_daily")
    op.drop_table("supplier_product_daily")
