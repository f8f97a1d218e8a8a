"""platform applications: applications, webhook_endpoints.owner_kind, new audit actions

Revision ID: e2a9c4f10610
Revises: e20a7c4b0620
Create Date: 2026-12-07 06:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e2a9c4f10610"
down_revision: str | None = "e20a7c4b0620"
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
NEW_ACTIONS = (
    "application.create",
    "application.disable",
    "application.enable",
    "webhook_endpoint.create",
    "webhook_endpoint.update",
    "webhook_endpoint.delete",
    "webhook_endpoint.rotate_secret",
    "event.replay",
)


def _actions_check(actions: Sequence[str]) -> str:
    return "action IN (" + ", ".join(f"'{a}'" for a in actions) + ")"


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "disabled",
                name="application_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
    )
    # Every endpoint so far is a supplier's. A constant default fills them without rewriting
    # the table; it is dropped at once, so a new endpoint always says whose it is.
    op.add_column(
        "webhook_endpoints",
        sa.Column("owner_kind", sa.String(length=32), nullable=False, server_default="supplier"),
    )
    op.alter_column("webhook_endpoints", "owner_kind", server_default=None)
    op.create_check_constraint(
        op.f("ck_webhook_endpoints_webhook_owner_kind"),
        "webhook_endpoints",
        "owner_kind IN ('supplier', 'application')",
    )
    # The owner is a supplier or an application, as a ledger account's owner is a shop, a
    # supplier or the platform: no foreign key can name either table.
    op.drop_constraint(
        op.f("fk_webhook_endpoints_owner_id_suppliers"), "webhook_endpoints", type_="foreignkey"
    )
    # A small table (at most 16 endpoints an owner): built in place. Events for shops and buyers
    # look up every application's endpoints by their kind alone.
    op.drop_index(op.f("ix_webhook_endpoints_owner_id"), table_name="webhook_endpoints")
    op.create_index(
        op.f("ix_webhook_endpoints_owner_kind"),
        "webhook_endpoints",
        ["owner_kind", "owner_id"],
        unique=False,
    )
    op.drop_constraint(op.f("ck_audit_records_audit_action"), "audit_records", type_="check")
    op.create_check_constraint(
        op.f("ck_audit_records_audit_action"),
        "audit_records",
        _actions_check(ACTIONS + NEW_ACTIONS),
    )


def downgrade() -> None:
    # The audit log is append-only: records of the new actions stay as they happened, so the
    # old vocabulary comes back unvalidated (it holds for every record written from now on).
    op.drop_constraint(op.f("ck_audit_records_audit_action"), "audit_records", type_="check")
    op.execute(
        f"ALTER TABLE audit_records ADD CONSTRAINT ck_audit_records_audit_action "
        f"CHECK ({_actions_check(ACTIONS)}) NOT VALID"
    )
    # Applications' endpoints go with them (their deliveries and attempts cascade).
    op.execute("DELETE FROM webhook_endpoints WHERE owner_kind = 'application'")
    op.drop_index(op.f("ix_webhook_endpoints_owner_kind"), table_name="webhook_endpoints")
    op.create_index(
        op.f("ix_webhook_endpoints_owner_id"), "webhook_endpoints", ["owner_id"], unique=False
    )
    op.create_foreign_key(
        op.f("fk_webhook_endpoints_owner_id_suppliers"),
        "webhook_endpoints",
        "suppliers",
        ["owner_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_constraint(
        op.f("ck_webhook_endpoints_webhook_owner_kind"), "webhook_endpoints", type_="check"
    )
    op.drop_column("webhook_endpoints", "owner_kind")
    op.drop_table("applications")
