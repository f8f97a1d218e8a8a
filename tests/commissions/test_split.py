"""The split rule: golden rounding vectors and properties over random lines and refunds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xiaopu.commissions.split import (
    PLATFORM_FEE,
    PLATFORM_MARKUP,
    SHOP_COMMISSION,
    SHOP_MARKUP,
    SUPPLIER_SHARE,
    reversal,
    split_line,
)
from xiaopu.models.ledger import Rule


@pytest.mark.parametrize(
    ("base", "bps", "commission"),
    [
        (1, 5000, 1),  # .5 rounds up
        (1, 4999, 0),
        (3, 5000, 2),  # 1.5 -> 2
        (5, 1000, 1),  # 0.5 -> 1
        (4, 1000, 0),  # 0.4 -> 0
        (15, 1000, 2),  # 1.5 -> 2
        (25, 1000, 3),  # 2.5 -> 3 (half-up, not to even)
        (9999, 1, 1),  # 0.9999 -> 1
        (4999, 1, 0),  # 0.4999 -> 0
        (5000, 1, 1),  # 0.5 -> 1
        (12345, 1500, 1852),  # 1851.75
        (1000, 10000, 1000),
        (1000, 0, 0),
    ],
)
def test_golden_commission_rounding(base: int, bps: int, commission: int) -> None:
    parts = split_line(base, 0, bps, 0, Rule.normal)
    assert parts[SHOP_COMMISSION] == commission
    assert parts[SUPPLIER_SHARE] == base - commission


def test_a_one_unit_line_rounds_each_part_once_and_adds_up() -> None:
    parts = split_line(1, 0, 5000, 5000, Rule.normal)
    # Both rates round 0.5 up to 1, but the fee gives way so the supplier is never negative.
    assert parts[SHOP_COMMISSION] == 1
    assert parts[PLATFORM_FEE] == 0
    assert parts[SUPPLIER_SHARE] == 0
    assert sum(parts.values()) == 1


def test_zero_decimal_currency_line() -> None:
    """JPY has no minor unit: amounts are whole yen and the same rule applies to them."""
    parts = split_line(1999, 200, 1250, 500, Rule.normal)  # ¥1,999 base, ¥200 markup
    assert parts[SHOP_COMMISSION] == 250  # 249.875 -> 250
    assert parts[PLATFORM_FEE] == 100  # 99.95 -> 100
    assert parts[SHOP_MARKUP] == 200
    assert parts[SUPPLIER_SHARE] == 1999 - 250 - 100
    assert sum(parts.values()) == 2199


def test_partial_refunds_summing_to_a_full_refund_reverse_exactly_the_accrual() -> None:
    # 7 units at 333 (base 2331), 15% commission, 5% fee, 17 markup a unit; refunded 3, 1, 3.
    accrued = split_line(2331, 119, 1500, 500, Rule.normal)
    kept, reversed_total = 7, dict.fromkeys(accrued, 0)
    for units in (3, 1, 3):
        step = reversal(333, 17, kept, kept - units, 1500, 500, Rule.normal)
        for part, amount in step.items():
            reversed_total[part] += amount
        kept -= units
    assert reversed_total == accrued
    assert accrued[SHOP_COMMISSION] == 350  # 349.65 -> 350
    assert accrued[PLATFORM_FEE] == 117  # 116.55 -> 117


def test_self_purchase_without_earnings_gives_the_shop_nothing() -> None:
    parts = split_line(10_000, 1_000, 1500, 500, Rule.self_purchase_none)
    assert parts[SHOP_COMMISSION] == parts[SHOP_MARKUP] == 0
    assert parts[PLATFORM_MARKUP] == 1_000
    assert parts[SUPPLIER_SHARE] == 10_000 - 500
    assert sum(parts.values()) == 11_000


rules = st.sampled_from(list(Rule))
bps = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=500, deadline=None)
@given(
    unit_price=st.integers(min_value=0, max_value=10**7),
    unit_markup=st.integers(min_value=0, max_value=10**6),
    quantity=st.integers(min_value=1, max_value=99),
    commission_bps=bps,
    fee_bps=bps,
    rule=rules,
    data=st.data(),
)
def test_parts_add_up_and_refunds_telescope(
    unit_price: int,
    unit_markup: int,
    quantity: int,
    commission_bps: int,
    fee_bps: int,
    rule: Rule,
    data: st.DataObject,
) -> None:
    accrued = split_line(
        unit_price * quantity, unit_markup * quantity, commission_bps, fee_bps, rule
    )
    assert sum(accrued.values()) == (unit_price + unit_markup) * quantity
    assert all(amount >= 0 for amount in accrued.values())
    kept = quantity
    taken = dict.fromkeys(accrued, 0)
    while kept:
        units = data.draw(st.integers(min_value=1, max_value=kept))
        step = reversal(unit_price, unit_markup, kept, kept - units, commission_bps, fee_bps, rule)
        assert sum(step.values()) == (unit_price + unit_markup) * units  # the buyer's refund
        # The shop's and the platform's parts only ever shrink on a refund.
        assert step[SHOP_COMMISSION] >= 0
        assert step[SHOP_MARKUP] >= 0
        assert step[PLATFORM_FEE] >= 0
        for part, amount in step.items():
            taken[part] += amount
            assert taken[part] <= accrued[part]
        kept -= units
    assert taken == accrued
