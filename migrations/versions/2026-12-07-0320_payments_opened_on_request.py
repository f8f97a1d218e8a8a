"""payments opened on request: the claim, the time opened and the pay URL, recorded after the call

Revision ID: 5b8e2d4f6a13
Revises: a41c0f9e2d37
Create Date: 2026-12-07 03:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b8e2d4f6a13"
down_revision: str | None = "a41c0f9e2d37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: no table rewrite, only a brief ACCESS EXCLUSIVE lock.
    op.add_column("payments", sa.Column("open_claimed_at", sa.DateTime(timezone=True)))
    op.add_column("payments", sa.Column("opened_at", sa.DateTime(timezone=True)))
    op.add_column("payments", sa.Column("pay_url", sa.String(length=2048)))
    op.create_check_constraint(
        op.f("ck_payments_opened_with_pay_url"),
        "payments",
        "opened_at IS NULL OR pay_url IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_payments_opened_with_pay_url"), "payments", type_="check")
    op.drop_column("payments", "pay_url")
    op.drop_column("payments", "opened_at")
    op.drop_column("payments", "open_claimed_at")
