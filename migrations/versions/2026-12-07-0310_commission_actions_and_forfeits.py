"""commission actions and forfeits: a fixed vocabulary of history actions, and where a refused
hold's money went

Revision ID: a41c0f9e2d37
Revises: 3a7d5e0c1b20
Create Date: 2026-12-07 03:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a41c0f9e2d37"
down_revision: str | None = "3a7d5e0c1b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = (
    "accrued",
    "reversed",
    "released",
    "paid",
    "held_released",
    "forfeited",
    "forfeit_completed",
)
PURPOSES = (
    "earnings_pending",
    "earnings_held",
    "earnings_available",
    "earnings_withdrawing",
    "payable_pending",
    "payable",
    "fees_pending",
    "fees",
    "clearing",
)
FORFEIT_PURPOSES = ("payable_pending", "payable", "fees_pending", "fees")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# Checked without holding the table's strongest lock through a full scan: added NOT VALID
# (new rows checked at once), then validated under a lock that lets reads and writes go on.
CHECKS = [
    ("commissions", "ck_commissions_commission_forfeited_to", _in("forfeited_to", PURPOSES)),
    (
        "commissions",
        "ck_commissions_forfeited_to_forfeited",
        f"forfeited_to IS NULL OR (status = 'forfeited' AND {_in('forfeited_to', FORFEIT_PURPOSES)})",
    ),
    ("commission_events", "ck_commission_events_commission_action", _in("action", ACTIONS)),
]


def upgrade() -> None:
    op.add_column("commissions", sa.Column("forfeited_to", sa.String(length=32), nullable=True))
    # Holds refused so far: their money went where the refusal's posting put it (the commission
    # to the supplier, the markup to the platform), at the available stage if the order had
    # completed by then, and completion has not moved it since.
    op.execute(
        """
        UPDATE commissions AS c SET forfeited_to = CASE
            WHEN c.kind = 'commission' AND d.available THEN 'payable'
            WHEN c.kind = 'commission' THEN 'payable_pending'
            WHEN d.available THEN 'fees'
            ELSE 'fees_pending' END
        FROM (
            SELECT f.supplier_order_id, EXISTS (
                SELECT 1 FROM ledger_transactions t
                JOIN ledger_entries e ON e.transaction_id = t.id
                JOIN ledger_accounts a ON a.id = e.account_id
                WHERE t.cause = 'held-forfeit:' || f.supplier_order_id
                    AND a.purpose IN ('payable', 'fees')
            ) AS available
            FROM (
                SELECT DISTINCT supplier_order_id FROM commissions
                WHERE status = 'forfeited' AND rule = 'self_purchase_hold'
            ) AS f
        ) AS d
        WHERE c.supplier_order_id = d.supplier_order_id AND c.status = 'forfeited'
            AND c.rule = 'self_purchase_hold'
        """
    )
    # The decisions wrote f"{decision}d": 'forfeitd', and 'released' like completion does.
    op.execute("UPDATE commission_events SET action = 'forfeited' WHERE action = 'forfeitd'")
    op.execute(
        "UPDATE commission_events SET action = 'held_released' "
        "WHERE action = 'released' AND cause LIKE 'held-release:%'"
    )
    for table, name, condition in CHECKS:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
    # After the commit of everything above: the scans run under SHARE UPDATE EXCLUSIVE only.
    with op.get_context().autocommit_block():
        for table, name, _ in CHECKS:
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    for table, name, _ in reversed(CHECKS):
        op.drop_constraint(op.f(name), table, type_="check")
    # Refused once completion has moved a refused hold's money on: the old schema cannot say
    # where that money is, and upgrading again would put it back in the pending stage.
    op.execute(
        """
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM commission_events WHERE action = 'forfeit_completed') THEN
                RAISE EXCEPTION 'completion moved refused holds on (forfeit_completed): this '
                    'revision cannot be rolled back without losing where that money is';
            END IF;
        END $$
        """
    )
    op.execute("UPDATE commission_events SET action = 'released' WHERE action = 'held_released'")
    op.execute("UPDATE commission_events SET action = 'forfeitd' WHERE action = 'forfeited'")
    op.drop_column("commissions", "forfeited_to")
