"""The event types subscribers can pick."""

from __future__ import annotations

import enum


class EventType(enum.StrEnum):
    api_key_created = "api_key.created"
    api_key_revoked = "api_key.revoked"
    order_placed = "order.placed"
    order_paid = "order.paid"
    order_expired = "order.expired"
    supplier_order_paid = "supplier_order.paid"
    supplier_order_accepted = "supplier_order.accepted"
    supplier_order_shipped = "supplier_order.shipped"
    supplier_order_delivered = "supplier_order.delivered"
    supplier_order_cancelled = "supplier_order.cancelled"
    supplier_order_completed = "supplier_order.completed"
    return_requested = "return.requested"
    return_decided = "return.decided"
    refund_succeeded = "refund.succeeded"
    refund_failed = "refund.failed"
    product_stock_low = "product.stock_low"
    payout_paid = "payout.paid"
    payout_failed = "payout.failed"
    supplier_payout_paid = "supplier_payout.paid"
    supplier_payout_failed = "supplier_payout.failed"
    recommendation_invited = "recommendation.invited"
