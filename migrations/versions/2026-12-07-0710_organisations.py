"""partner organisations (生态机构, 城市合伙人): organisations and their contracts, members,
invite codes, cohort moves, notices and their recipients; a shop's cohort; new audit actions

Revision ID: e22a0b0c0710
Revises: e21c0a9a0700
Create Date: 2026-12-07 07:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e22a0b0c0710"
down_revision: str | None = "e21c0a9a0700"
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
    "application.create",
    "application.disable",
    "application.enable",
    "webhook_endpoint.create",
    "webhook_endpoint.update",
    "webhook_endpoint.delete",
    "webhook_endpoint.rotate_secret",
    "event.replay",
)
NEW_ACTIONS = (
    "organisation.create",
    "organisation.update_contract",
    "organisation.suspend",
    "organisation.resume",
    "shop.move_cohort",
)
COHORT_INDEX = (
    "CREATE INDEX CONCURRENTLY ix_shops_organisation_id ON shops (organisation_id, id) "
    "WHERE organisation_id IS NOT NULL"
)


def _actions_check(actions: Sequence[str]) -> str:
    return "action IN (" + ", ".join(f"'{a}'" for a in actions) + ")"


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "government",
                "college",
                "social",
                "company",
                "city_partner",
                "team",
                name="organisation_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "suspended",
                name="organisation_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("override_bps", sa.SmallInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("monthly_cap_minor", sa.BigInteger(), nullable=False),
        sa.Column("min_active_shops", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "min_active_shops >= 0", name=op.f("ck_organisations_min_active_not_negative")
        ),
        sa.CheckConstraint(
            "monthly_cap_minor >= 0", name=op.f("ck_organisations_cap_not_negative")
        ),
        sa.CheckConstraint(
            "override_bps BETWEEN 0 AND 10000", name=op.f("ck_organisations_override_bps_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    op.create_table(
        "invite_codes",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "max_uses IS NULL OR max_uses > 0", name=op.f("ck_invite_codes_max_uses_positive")
        ),
        sa.CheckConstraint(
            "uses >= 0 AND (max_uses IS NULL OR uses <= max_uses)",
            name=op.f("ck_invite_codes_uses_within"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["accounts.id"], name=op.f("fk_invite_codes_created_by_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_invite_codes_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_invite_codes_code")),
    )
    op.create_index(
        op.f("ix_invite_codes_organisation_id"),
        "invite_codes",
        ["organisation_id", "id"],
        unique=False,
    )
    op.create_table(
        "notices",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "task",
                "notice",
                name="notice_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sent_by", sa.Uuid(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("reads BETWEEN 0 AND recipients", name=op.f("ck_notices_reads_within")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_notices_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sent_by"], ["accounts.id"], name=op.f("fk_notices_sent_by_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    op.create_index(
        op.f("ix_notices_organisation_id"), "notices", ["organisation_id", "id"], unique=False
    )
    op.create_table(
        "organisation_members",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "staff",
                name="organisation_role",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_organisation_members_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_organisation_members_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organisation_id", "account_id", name=op.f("pk_organisation_members")
        ),
    )
    op.create_index(
        op.f("ix_organisation_members_account_id"),
        "organisation_members",
        ["account_id"],
        unique=False,
    )
    op.create_table(
        "cohort_moves",
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("from_organisation_id", sa.Uuid(), nullable=True),
        sa.Column("to_organisation_id", sa.Uuid(), nullable=True),
        sa.Column("invite_code_id", sa.Uuid(), nullable=True),
        sa.Column("operator_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_organisation_id"],
            ["organisations.id"],
            name=op.f("fk_cohort_moves_from_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["invite_code_id"],
            ["invite_codes.id"],
            name=op.f("fk_cohort_moves_invite_code_id_invite_codes"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["accounts.id"], name=op.f("fk_cohort_moves_operator_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_cohort_moves_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_organisation_id"],
            ["organisations.id"],
            name=op.f("fk_cohort_moves_to_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohort_moves")),
    )
    op.create_index(
        op.f("ix_cohort_moves_shop_id"), "cohort_moves", ["shop_id", "at"], unique=False
    )
    op.create_table(
        "notice_recipients",
        sa.Column("notice_id", sa.Uuid(), nullable=False),
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["notice_id"],
            ["notices.id"],
            name=op.f("fk_notice_recipients_notice_id_notices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_notice_recipients_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notice_id", "shop_id", name=op.f("pk_notice_recipients")),
    )
    op.create_index(
        op.f("ix_notice_recipients_shop_id"),
        "notice_recipients",
        ["shop_id", "notice_id"],
        unique=False,
    )
    # Nullable columns without defaults: no rewrite of shops, and every shop starts in no cohort
    # (so the new constraint and key hold already; they are checked without a long lock).
    op.add_column("shops", sa.Column("organisation_id", sa.Uuid(), nullable=True))
    op.add_column("shops", sa.Column("cohort_joined_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "ALTER TABLE shops ADD CONSTRAINT fk_shops_organisation_id_organisations "
        "FOREIGN KEY (organisation_id) REFERENCES organisations (id) NOT VALID"
    )
    op.execute(
        "ALTER TABLE shops ADD CONSTRAINT ck_shops_cohort_joined_at "
        "CHECK ((organisation_id IS NULL) = (cohort_joined_at IS NULL)) NOT VALID"
    )
    op.execute("ALTER TABLE shops VALIDATE CONSTRAINT fk_shops_organisation_id_organisations")
    op.execute("ALTER TABLE shops VALIDATE CONSTRAINT ck_shops_cohort_joined_at")
    op.drop_constraint(op.f("ck_audit_records_audit_action"), "audit_records", type_="check")
    op.create_check_constraint(
        op.f("ck_audit_records_audit_action"),
        "audit_records",
        _actions_check(ACTIONS + NEW_ACTIONS),
    )
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_shops_organisation_id")
        op.execute(COHORT_INDEX)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_shops_organisation_id")
    # The audit log is append-only: records of the new actions stay as they happened, so the
    # old vocabulary comes back unvalidated (it holds for every record written from now on).
    op.drop_constraint(op.f("ck_audit_records_audit_action"), "audit_records", type_="check")
    op.execute(
        f"ALTER TABLE audit_records ADD CONSTRAINT ck_audit_records_audit_action "
        f"CHECK ({_actions_check(ACTIONS)}) NOT VALID"
    )
    op.drop_constraint(op.f("ck_shops_cohort_joined_at"), "shops", type_="check")
    op.drop_constraint(op.f("fk_shops_organisation_id_organisations"), "shops", type_="foreignkey")
    op.drop_column("shops", "cohort_joined_at")
    op.drop_column("shops", "organisation_id")
    op.drop_index(op.f("ix_notice_recipients_shop_id"), table_name="notice_recipients")
    op.drop_table("notice_recipients")
    op.drop_index(op.f("ix_cohort_moves_shop_id"), table_name="cohort_moves")
    op.drop_table("cohort_moves")
    op.drop_index(op.f("ix_organisation_members_account_id"), table_name="organisation_members")
    op.drop_table("organisation_members")
    op.drop_index(op.f("ix_notices_organisation_id"), table_name="notices")
    op.drop_table("notices")
    op.drop_index(op.f("ix_invite_codes_organisation_id"), table_name="invite_codes")
    op.drop_table("invite_codes")
    op.drop_table("organisations")
