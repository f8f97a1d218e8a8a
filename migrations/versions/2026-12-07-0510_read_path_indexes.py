"""read path indexes: supplier statements, catalogue sorts, a shop's products, held commissions;
commission_events.supplier_id (a statement's movements by supplier and time); statement exports

Revision ID: d19a7e5c0a10
Revises: c5f0e0a11801
Create Date: 2026-12-07 05:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d19a7e5c0a10"
down_revision: str | None = "c5f0e0a11801"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each event carries its line's supplier, filled in by the database from the line (every writer
# of events is covered, set-based ones too), so that a statement finds a supplier's movements of
# a period in one index range, whatever its share of everyone's.
FILL_SUPPLIER = """
CREATE FUNCTION commission_events_supplier() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.supplier_id := (SELECT supplier_id FROM commissions WHERE id = NEW.commission_id);
    RETURN NEW;
END $$
"""
FILL_TRIGGER = (
    "CREATE TRIGGER commission_events_supplier BEFORE INSERT ON commission_events "
    "FOR EACH ROW WHEN (NEW.supplier_id IS NULL) EXECUTE FUNCTION commission_events_supplier()"
)
BACKFILL_BATCH = 20_000

# (name, table, key, predicate). The catalogue's sorts are partial on active products and
# carry the keyset's tiebreaker in its direction, so a page is read off the index in order.
INDEXES = [
    ("ix_commissions_supplier_id", "commissions", "supplier_id, id", None),
    ("ix_commissions_held", "commissions", "id", "status = 'held'"),
    ("ix_commission_events_supplier_id", "commission_events", "supplier_id, at", None),
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
    op.create_table(
        "statement_exports",
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "building",
                "ready",
                "failed",
                "expired",
                name="statement_export_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("until > since", name=op.f("ck_statement_exports_period_ordered")),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_statement_exports_supplier_id_suppliers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_exports")),
    )
    op.create_index(
        op.f("ix_statement_exports_supplier_id"), "statement_exports", ["supplier_id", "id"]
    )
    op.create_index(
        "ix_statement_exports_expiring",
        "statement_exports",
        ["expires_at"],
        postgresql_where=sa.text("status = 'ready'"),
    )
    op.create_table(
        "statement_export_chunks",
        sa.Column("export_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["statement_exports.id"],
            name=op.f("fk_statement_export_chunks_export_id_statement_exports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("export_id", "seq", name=op.f("pk_statement_export_chunks")),
    )
    op.add_column("commission_events", sa.Column("supplier_id", sa.Uuid(), nullable=True))
    op.execute(FILL_SUPPLIER)
    op.execute(FILL_TRIGGER)
    # Built without blocking writes (checkout, postings, the catalogue's bulk upserts); an index
    # left invalid by a broken-off run is dropped first.
    with op.get_context().autocommit_block():
        # Past events in short batches, each its own transaction; new ones are filled by the
        # trigger meanwhile.
        while True:
            done = op.get_bind().execute(
                sa.text(
                    "UPDATE commission_events e SET supplier_id = c.supplier_id "
                    "FROM commissions c WHERE c.id = e.commission_id AND e.id IN ("
                    "SELECT id FROM commission_events WHERE supplier_id IS NULL LIMIT :n)"
                ),
                {"n": BACKFILL_BATCH},
            )
            if done.rowcount == 0:
                break
        # NOT NULL from a validated CHECK: the check is validated without blocking writes, and
        # SET NOT NULL then trusts it instead of scanning under an exclusive lock.
        op.execute(
            "ALTER TABLE commission_events ADD CONSTRAINT supplier_id_filled "
            "CHECK (supplier_id IS NOT NULL) NOT VALID"
        )
        op.execute("ALTER TABLE commission_events VALIDATE CONSTRAINT supplier_id_filled")
        op.execute("ALTER TABLE commission_events ALTER COLUMN supplier_id SET NOT NULL")
        op.execute("ALTER TABLE commission_events DROP CONSTRAINT supplier_id_filled")
        for name, table, key, predicate in INDEXES:
            where = f" WHERE {predicate}" if predicate else ""
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {table} ({key}){where}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, *_ in reversed(INDEXES):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute("DROP TRIGGER IF EXISTS commission_events_supplier ON commission_events")
    op.execute("DROP FUNCTION IF EXISTS commission_events_supplier()")
    op.drop_column("commission_events", "supplier_id")
    op.drop_table("statement_export_chunks")
    op.drop_index("ix_statement_exports_expiring", table_name="statement_exports")
    op.drop_index(op.f("ix_statement_exports_supplier_id"), table_name="statement_exports")
    op.drop_table("statement_exports")
