"""sandbox payouts: the sandbox payout provider's own books, keyed by payout attempt

Revision ID: 3a7d5e0c1b20
Revises: 9c3e71a0d5b2
Create Date: 2026-12-07 03:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3a7d5e0c1b20"
down_revision: str | None = "9c3e71a0d5b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_payouts",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("payee_kind", sa.String(length=20), nullable=False),
        sa.Column("payee_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=False),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_sandbox_payouts_amount_positive")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sandbox_payouts")),
    )


def downgrade() -> None:
    op.drop_table("sandbox_payouts")
