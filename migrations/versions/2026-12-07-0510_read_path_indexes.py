"""read path indexes: supplier statements, catalogue sorts, a shop's products, held commissions

Revision ID: d19a7e5c0a10
Revises: b5e55c0e4201
Create Date: 2026-12-07 05:10:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d19a7e5c0a10"
down_revision: str | None = "b5e55c0e4201"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, key, predicate). The catalogue's sorts are partial on active products and
# carry the keyset's tiebreaker in its direction, so a page is read off the index in order.
INDEXES = [
    ("ix_commissions_supplier_id", "commissions", "supplier_id, id", None),
    ("ix_commissions_held", "commissions", "id", "status = 'held'"),
    ("ix_commission_events_at", "commission_events", "at", None),
    (
        "ix_products_by_commission",
        "products",
        "max_commission_bps DESC, id DESC",
        "status = 'active'",
    ),
    ("ix_products_by_price", "products", "min_price_minor, id DESC", "status = 'active'"),
    ("ix_shop_products_shop_id", "shop_products", "shop_id, id", None),
]


def upgrade() -> None:
    # Built without blocking writes (checkout, postings, the catalogue's bulk upserts); an index
    # left invalid by a broken-off run is dropped first.
    with op.get_context().autocommit_block():
        for name, table, key, predicate in INDEXES:
            where = f" WHERE {predicate}" if predicate else ""
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {table} ({key}){where}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, *_ in reversed(INDEXES):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
