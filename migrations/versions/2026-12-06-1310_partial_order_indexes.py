"""partial order indexes: guests' orders and unshipped supplier orders stay out of them

Revision ID: 9c3e71a0d5b2
Revises: 5b1f0c2e9a41
Create Date: 2026-12-06 13:10:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9c3e71a0d5b2"
down_revision: str | None = "5b1f0c2e9a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (index, table, columns, predicate): each is rebuilt beside the old one without blocking
# writes, then takes its name.
INDEXES = [
    ("ix_orders_buyer_account_id", "orders", "buyer_account_id, id", "buyer_account_id"),
    ("ix_supplier_orders_carrier", "supplier_orders", "carrier, tracking_number", "carrier"),
]


def _rebuild(partial: bool) -> None:
    with op.get_context().autocommit_block():
        for name, table, columns, column in INDEXES:
            where = f" WHERE {column} IS NOT NULL" if partial else ""
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new")
            op.execute(f"CREATE INDEX CONCURRENTLY {name}_new ON {table} ({columns}){where}")
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")  # gone if a run broke off
            op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    _rebuild(partial=True)


def downgrade() -> None:
    _rebuild(partial=False)
