"""orders count once: orders.sale_counted_at marks an order counted in its shop's sales

A shop's completed_sales counted supplier orders; it now counts buyer orders. Existing orders
with a completed supplier order that kept a unit are marked counted, and each shop's count is
recounted under the new rule (levels stay: a shop is never demoted).

Revision ID: 6e2b8f4a1c37
Revises: 5e77e1a0c0de
Create Date: 2026-12-07 03:50:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6e2b8f4a1c37"
down_revision: str | None = "5e77e1a0c0de"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("sale_counted_at", sa.DateTime(timezone=True)))
    op.execute(
        """
        UPDATE orders o SET sale_counted_at = k.first_completed_at
        FROM (
            SELECT so.order_id, min(so.completed_at) AS first_completed_at
            FROM supplier_orders so
            WHERE so.status = 'completed' AND EXISTS (
                SELECT 1 FROM order_lines l
                WHERE l.supplier_order_id = so.id AND l.returned_quantity < l.quantity
            )
            GROUP BY so.order_id
        ) AS k
        WHERE o.id = k.order_id
        """
    )
    op.execute(
        """
        UPDATE shops s SET completed_sales = coalesce(
            (SELECT count(*) FROM orders o
             WHERE o.shop_id = s.id AND o.sale_counted_at IS NOT NULL), 0)
        """
    )


def downgrade() -> None:
    # The counts stay as recounted: which supplier orders were counted before is not kept.
    op.drop_column("orders", "sale_counted_at")
