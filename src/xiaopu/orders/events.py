"""The payloads of order events (the outbox's `data`), one shape per object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xiaopu.models import Order, OrderLine, SupplierOrder


def order_event(order: Order) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "shop_id": str(order.shop_id),
        # The buyer's account, for the app to notify them; null for a guest checkout. Never the
        # buyer's phone, name or address.
        "buyer_account_id": str(order.buyer_account_id) if order.buyer_account_id else None,
        "status": str(order.status),
        "currency": order.currency,
        "total_minor": order.total_minor,
        "attribution": str(order.attribution),
        "self_purchase": order.self_purchase,
    }


def supplier_order_event(
    part: SupplierOrder, lines: Sequence[OrderLine] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "supplier_order_id": str(part.id),
        "order_id": str(part.order_id),
        "supplier_id": str(part.supplier_id),
        "shop_id": str(part.shop_id),
        "status": str(part.status),
        "currency": part.currency,
        "items_minor": part.items_minor,
        "shipping_minor": part.shipping_minor,
        "total_minor": part.total_minor,
        "refunded_minor": part.refunded_minor,
    }
    if part.carrier:
        data["carrier"] = part.carrier
        data["tracking_number"] = part.tracking_number
    if lines is not None:
        data["lines"] = [
            {
                "line_id": str(ln.id),
                "sku": ln.sku,
                "quantity": ln.quantity,
                "unit_price_minor": ln.unit_price_minor,
                "unit_markup_minor": ln.unit_markup_minor,
                "commission_bps": ln.commission_bps,
                "platform_fee_bps": ln.platform_fee_bps,
            }
            for ln in lines
        ]
    return data
