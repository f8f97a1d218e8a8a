"""refund claims: the time a refund job claimed a refund for its provider call

Revision ID: 7c1a5e3b9d20
Revises: 6e2b8f4a1c37
Create Date: 2026-12-07 04:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1a5e3b9d20"
down_revision: str | None = "6e2b8f4a1c37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: no table rewrite, only a brief ACCESS EXCLUSIVE lock.
    op.add_column("refunds", sa.Column("claimed_at", sa.DateTime(timezone=True)))
    op.create_check_constraint(
        op.f("ck_refunds_claimed_while_pending"),
        "refunds",
        "claimed_at IS NULL OR status = 'pending'",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_refunds_claimed_while_pending"), "refunds", type_="check")
    op.drop_column("refunds", "claimed_at")
