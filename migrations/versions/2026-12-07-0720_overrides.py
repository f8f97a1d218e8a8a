"""organisation overrides (part 2 of issue 22): override lines per completed cohort order line,
the per organisation-and-month counter the cap is checked against and the month's close; the
ledger's organisation owner kind

Revision ID: e22b0d0e0720
Revises: e22a0b0c0710
Create Date: 2026-12-07 18:32:14.604999+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e22b0d0e0720"
down_revision: str | None = "e22a0b0c0710"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "override_months",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("accrued_minor", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active_shops", sa.Integer(), nullable=True),
        sa.Column("required", sa.Integer(), nullable=True),
        sa.Column("rule_met", sa.Boolean(), nullable=True),
        sa.Column("released_minor", sa.BigInteger(), nullable=False),
        sa.Column("returned_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(closed_at IS NULL) = (rule_met IS NULL)",
            name=op.f("ck_override_months_closed_with_outcome"),
        ),
        sa.CheckConstraint(
            "accrued_minor >= 0", name=op.f("ck_override_months_accrued_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_override_months_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_override_months")),
        sa.UniqueConstraint(
            "organisation_id",
            "month",
            "currency",
            name=op.f("uq_override_months_organisation_id_month_currency"),
        ),
    )
    op.create_table(
        "overrides",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("supplier_order_id", sa.Uuid(), nullable=False),
        sa.Column("order_line_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("rate_bps", sa.SmallInteger(), nullable=False),
        sa.Column("accrued_minor", sa.BigInteger(), nullable=False),
        sa.Column("reversed_minor", sa.BigInteger(), nullable=False),
        sa.Column("clawed_back_minor", sa.BigInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "available",
                "returned",
                name="override_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "clawed_back_minor >= 0 AND clawed_back_minor <= reversed_minor",
            name=op.f("ck_overrides_clawed_back_within"),
        ),
        sa.CheckConstraint(
            "fee_minor >= 0 AND accrued_minor >= 0", name=op.f("ck_overrides_amounts_not_negative")
        ),
        sa.CheckConstraint(
            "rate_bps BETWEEN 0 AND 10000", name=op.f("ck_overrides_rate_bps_range")
        ),
        sa.CheckConstraint(
            "reversed_minor >= 0 AND reversed_minor <= accrued_minor",
            name=op.f("ck_overrides_reversed_within"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_overrides_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["order_line_id"],
            ["order_lines.id"],
            name=op.f("fk_overrides_order_line_id_order_lines"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_overrides_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_overrides_shop_id_shops")),
        sa.ForeignKeyConstraint(
            ["supplier_order_id"],
            ["supplier_orders.id"],
            name=op.f("fk_overrides_supplier_order_id_supplier_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overrides")),
        sa.UniqueConstraint(
            "supplier_order_id",
            "order_line_id",
            name=op.f("uq_overrides_supplier_order_id_order_line_id"),
        ),
    )
    op.create_index(
        op.f("ix_overrides_organisation_id"),
        "overrides",
        ["organisation_id", "month", "id"],
        unique=False,
    )
    op.drop_constraint(
        op.f("ck_ledger_accounts_ledger_owner_kind"), "ledger_accounts", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_ledger_accounts_ledger_owner_kind"),
        "ledger_accounts",
        "owner_kind IN ('shop', 'supplier', 'platform', 'organisation')",
    )


def downgrade() -> None:
    # Refused while an organisation's account exists: the ledger is append-only.
    op.drop_constraint(
        op.f("ck_ledger_accounts_ledger_owner_kind"), "ledger_accounts", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_ledger_accounts_ledger_owner_kind"),
        "ledger_accounts",
        "owner_kind IN ('shop', 'supplier', 'platform')",
    )
    op.drop_index(op.f("ix_overrides_organisation_id"), table_name="overrides")
    op.drop_table("overrides")
    op.drop_table("override_months")
