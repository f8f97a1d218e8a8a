"""deferred refusal: the function a unit of work's single write statement refuses itself with

Revision ID: 5b1f0c2e9a41
Revises: d0400cea4ee2
Create Date: 2026-12-06 12:30:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5b1f0c2e9a41"
down_revision: str | None = "d0400cea4ee2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A unit of work that commits as one statement (db.send_deferred) checks its own outcome in that
# statement, and aborts it, writes and all, when a write found the database moved (stock taken
# by a concurrent order, an idempotency key stored by a twin) or when a query found work that
# needs a transaction. Its own SQLSTATE tells these refusals from every other error.
UPGRADE = """
CREATE FUNCTION xiaopu_refuse(reason text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF reason IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'XP409', MESSAGE = reason;
    END IF;
    RETURN true;
END $$
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP FUNCTION xiaopu_refuse(text)")
