"""withdrawal claims: a payout's provider key and claim time, so a crashed run is recovered

Revision ID: 6e2b9d4f7a13
Revises: 5b8e2d4f6a13
Create Date: 2026-12-07 03:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6e2b9d4f7a13"
down_revision: str | None = "5b8e2d4f6a13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("withdrawals", sa.Column("payout_key", sa.String(length=200), nullable=True))
    op.add_column("withdrawals", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    # Payouts never committed `processing` before this revision: one transaction took a
    # withdrawal from `requested` to `paid` or `failed`, so no existing row breaks the check.
    op.create_check_constraint(
        op.f("ck_withdrawals_claimed_has_key"),
        "withdrawals",
        "status <> 'processing' OR (payout_key IS NOT NULL AND claimed_at IS NOT NULL)",
    )
    op.create_index(
        "ix_withdrawals_claimed",
        "withdrawals",
        ["claimed_at"],
        unique=False,
        postgresql_where="status = 'processing'",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_withdrawals_claimed", table_name="withdrawals", postgresql_where="status = 'processing'"
    )
    op.drop_constraint(op.f("ck_withdrawals_claimed_has_key"), "withdrawals", type_="check")
    op.drop_column("withdrawals", "claimed_at")
    op.drop_column("withdrawals", "payout_key")
