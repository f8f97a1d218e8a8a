"""storefront: shops.blurb, the shopkeeper's words at the top of the shop's storefront page

Revision ID: c5f0e0a11801
Revises: b5e55c0e4201
Create Date: 2026-12-07 05:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5f0e0a11801"
down_revision: str | None = "b5e55c0e4201"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: a catalogue change, no table rewrite.
    op.add_column("shops", sa.Column("blurb", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("shops", "blurb")
