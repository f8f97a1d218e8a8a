"""Payloads of the commission events that applications receive: ids and amounts, no person."""

from __future__ import annotations

import uuid
from typing import Literal


def accrued(
    *,
    shop_id: uuid.UUID,
    order_id: uuid.UUID,
    supplier_order_id: uuid.UUID,
    currency: str,
    commission_minor: int,
    markup_minor: int,
    held: bool,
    boost_minor: int = 0,
) -> dict[str, object]:
    """commission.accrued: the shop's earnings on one supplier order, on payment (a campaign's
    boost is its own part)."""
    return {
        "shop_id": str(shop_id),
        "order_id": str(order_id),
        "supplier_order_id": str(supplier_order_id),
        "currency": currency,
        "amount_minor": commission_minor + boost_minor + markup_minor,
        "commission_minor": commission_minor,
        "boost_minor": boost_minor,
        "markup_minor": markup_minor,
        "status": "held" if held else "pending",
    }


def available(
    *,
    shop_id: uuid.UUID,
    order_id: uuid.UUID,
    supplier_order_id: uuid.UUID,
    currency: str,
    amount_minor: int,
    cause: Literal["completion", "held_released"],
) -> dict[str, object]:
    """commission.available: the shop's earnings on one supplier order became withdrawable."""
    return {
        "shop_id": str(shop_id),
        "order_id": str(order_id),
        "supplier_order_id": str(supplier_order_id),
        "currency": currency,
        "amount_minor": amount_minor,
        "cause": cause,
    }


def reversed_(
    *,
    shop_id: uuid.UUID,
    order_id: uuid.UUID,
    supplier_order_id: uuid.UUID,
    currency: str,
    amount_minor: int,
    cause: Literal["refund", "forfeited"],
    refund_id: uuid.UUID | None,
    clawback: bool,
) -> dict[str, object]:
    """commission.reversed: earnings on one supplier order taken back from the shop, by a
    refund (a clawback once they were available or paid out) or an operator's forfeit."""
    return {
        "shop_id": str(shop_id),
        "order_id": str(order_id),
        "supplier_order_id": str(supplier_order_id),
        "currency": currency,
        "amount_minor": amount_minor,
        "cause": cause,
        "refund_id": None if refund_id is None else str(refund_id),
        "clawback": clawback,
    }
