"""share links and clicks

Revision ID: 2970d630db27
Revises: ab72fbe8a393
Create Date: 2026-11-22 05:56:19.278684+00:00
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op


def _month_partitions(months: int) -> list[str]:
    """Partitions for this month and the next ones (the schedule adds more as time passes)."""
    today = datetime.now(UTC).date().replace(day=1)
    statements = []
    for offset in range(months + 1):
        year, month = divmod(today.month - 1 + offset, 12)
        start = date(today.year + year, month + 1, 1)
        year, month = divmod(start.month, 12)
        end = date(start.year + year, month + 1, 1)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS clicks_{start:%Y_%m} PARTITION OF clicks "
            f"FOR VALUES FROM ('{start}') TO ('{end}')"
        )
    return statements


revision: str = "2970d630db27"
down_revision: str | None = "ab72fbe8a393"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clicks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("visitor_id", sa.String(length=44), nullable=False),
        sa.Column("referrer_host", sa.String(length=255), nullable=True),
        sa.Column("agent_class", sa.String(length=16), nullable=False),
        sa.Column("is_repeat", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_clicks")),
        postgresql_partition_by="RANGE (created_at)",
    )
    op.create_index(op.f("ix_clicks_link_id"), "clicks", ["link_id", "created_at"], unique=False)
    op.create_table(
        "link_daily_stats",
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("unique_visitors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("link_id", "day", name=op.f("pk_link_daily_stats")),
    )
    op.create_table(
        "link_daily_visitors",
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("visitor_id", sa.String(length=44), nullable=False),
        sa.PrimaryKeyConstraint(
            "link_id", "day", "visitor_id", name=op.f("pk_link_daily_visitors")
        ),
    )
    op.create_table(
        "share_links",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("label", sa.String(length=80), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_share_links_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_share_links_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_links")),
        sa.UniqueConstraint("code", name=op.f("uq_share_links_code")),
    )
    op.create_index(op.f("ix_share_links_shop_id"), "share_links", ["shop_id", "id"], unique=False)

    # A default partition catches anything the monthly ones miss; the `links.partitions`
    # schedule keeps the coming months' partitions made ahead of time.
    op.execute("CREATE TABLE clicks_default PARTITION OF clicks DEFAULT")
    for statement in _month_partitions(3):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_share_links_shop_id"), table_name="share_links")
    op.drop_table("share_links")
    op.drop_table("link_daily_visitors")
    op.drop_table("link_daily_stats")
    op.drop_index(op.f("ix_clicks_link_id"), table_name="clicks")
    op.drop_table("clicks")
