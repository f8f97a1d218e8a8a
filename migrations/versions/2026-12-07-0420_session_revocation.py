"""session revocation: a partial index on refresh_tokens.revoked_at for the revocation poll

Revision ID: b5e55c0e4201
Revises: a0d17c0e4101
Create Date: 2026-12-07 04:20:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b5e55c0e4201"
down_revision: str | None = "a0d17c0e4101"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_refresh_tokens_revoked_at"


def upgrade() -> None:
    # Built without blocking logins and refreshes; an index left invalid by a broken-off run is
    # dropped first.
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.execute(
            f"CREATE INDEX CONCURRENTLY {INDEX} ON refresh_tokens (revoked_at) "
            "WHERE revoked_at IS NOT NULL"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
