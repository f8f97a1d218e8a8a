"""operator audit log: audit_records (append-only, hash-chained) and operators.disabled_at

Revision ID: a0d17c0e4101
Revises: 7c1a5e3b9d20
Create Date: 2026-12-07 04:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a0d17c0e4101"
down_revision: str | None = "7c1a5e3b9d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = (
    "supplier.approve",
    "supplier.reject",
    "supplier.suspend",
    "return.decide",
    "return.overrule",
    "commission.held_release",
    "commission.held_forfeit",
    "refund.retry",
    "payout.run",
    "settlement_payout.retry",
    "operator.create",
    "operator.enable",
    "operator.disable",
)

# The log is append-only: rows are never updated or deleted, and the table is never truncated.
APPEND_ONLY = [
    """
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'P0001';
    END $$
    """,
    "CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
]


def upgrade() -> None:
    # A nullable column without a default: no table rewrite, only a brief ACCESS EXCLUSIVE lock.
    op.add_column("operators", sa.Column("disabled_at", sa.DateTime(timezone=True)))
    actions = ", ".join(f"'{a}'" for a in ACTIONS)
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column(
            "action",
            sa.Enum(*ACTIONS, name="audit_action", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(f"action IN ({actions})", name=op.f("ck_audit_records_audit_action")),
        sa.CheckConstraint(
            "octet_length(hash) = 32 AND octet_length(prev_hash) = 32",
            name=op.f("ck_audit_records_sha256"),
        ),
        sa.CheckConstraint("seq > 0", name=op.f("ck_audit_records_seq_positive")),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["accounts.id"], name=op.f("fk_audit_records_operator_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_records_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_records_seq")),
    )
    op.create_index(
        op.f("ix_audit_records_action"), "audit_records", ["action", "seq"], unique=False
    )
    op.create_index(op.f("ix_audit_records_at"), "audit_records", ["at"], unique=False)
    op.create_index(
        op.f("ix_audit_records_object_type"),
        "audit_records",
        ["object_type", "object_id", "seq"],
        unique=False,
    )
    op.create_index(
        op.f("ix_audit_records_operator_id"), "audit_records", ["operator_id", "seq"], unique=False
    )
    for statement in APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    # Dropping the table drops its triggers.
    op.drop_table("audit_records")
    op.execute("DROP FUNCTION audit_append_only()")
    op.drop_column("operators", "disabled_at")
