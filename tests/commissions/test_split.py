"""The split rule: golden rounding vectors and properties over random lines and refunds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xiaopu.commissions.split import (
    PLATFORM_FEE,
    PLATFORM_MARKUP,
    SHOP_BOOST,
    SHOP_COMMISSION,
    SHOP_MARKUP,
    SUPPLIER_SHARE,
    boost_of,
    reversal,
    split_line,
)
from xiaopu.kit.money import apply_bps
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


# A campaign's boost (issue 21) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "boost_bps", "boost"),
    [
        (1, 5000, 1),  # .5 rounds up
        (1, 4999, 0),
        (5, 1000, 1),  # 0.5 -> 1
        (25, 1000, 3),  # 2.5 -> 3 (half-up, not to even)
        (4999, 1, 0),  # 0.4999 -> 0
        (5000, 1, 1),  # 0.5 -> 1
        (16_000, 500, 800),
        (8_000, 500, 400),
        (12345, 333, 411),  # 411.0885
        (1000, 0, 0),
    ],
)
def test_golden_boost_rounding(base: int, boost_bps: int, boost: int) -> None:
    parts = split_line(base, 0, 0, 0, Rule.normal, boost_bps)
    assert parts[SHOP_BOOST] == boost == boost_of(base, 0, boost_bps)
    assert parts[SUPPLIER_SHARE] == base - boost  # the boost is paid from the supplier's share


def test_the_boost_is_its_own_part_beside_the_commission() -> None:
    # 16,000 at 10% commission, 5% boost and 5% fee, 1,600 markup.
    parts = split_line(16_000, 1_600, 1000, 500, Rule.normal, 500)
    assert parts == {
        SHOP_COMMISSION: 1_600,
        SHOP_BOOST: 800,
        SHOP_MARKUP: 1_600,
        PLATFORM_FEE: 800,
        PLATFORM_MARKUP: 0,
        SUPPLIER_SHARE: 16_000 - 1_600 - 800 - 800,
    }
    assert sum(parts.values()) == 17_600


def test_the_boost_gives_way_when_commission_and_boost_would_exceed_the_base() -> None:
    # 1 unit of 1: commission 0.5 -> 1 and boost 0.5 -> 1 cannot both be paid from a base of 1.
    parts = split_line(1, 0, 5000, 0, Rule.normal, 5000)
    assert (parts[SHOP_COMMISSION], parts[SHOP_BOOST], parts[SUPPLIER_SHARE]) == (1, 0, 0)
    assert boost_of(1, 5000, 5000) == 0  # what the line reserves of the budget, the same
    # 9,000 bps of commission and 2,000 of boost on 100: the boost gets what is left, 10.
    parts = split_line(100, 0, 9000, 0, Rule.normal, 2000)
    assert (parts[SHOP_COMMISSION], parts[SHOP_BOOST], parts[SUPPLIER_SHARE]) == (90, 10, 0)
    assert boost_of(100, 9000, 2000) == 10


def test_the_fee_gives_way_after_commission_and_boost() -> None:
    # 60% + 30% leave 10% of 1,000 for a 20% fee: the fee is cut to 100, the supplier gets 0.
    parts = split_line(1_000, 0, 6000, 2000, Rule.normal, 3000)
    assert (parts[SHOP_COMMISSION], parts[SHOP_BOOST]) == (600, 300)
    assert (parts[PLATFORM_FEE], parts[SUPPLIER_SHARE]) == (100, 0)
    # Commission and boost take it all: no fee at all.
    parts = split_line(1_000, 0, 6000, 500, Rule.normal, 4000)
    assert (parts[SHOP_BOOST], parts[PLATFORM_FEE], parts[SUPPLIER_SHARE]) == (400, 0, 0)


def test_self_purchase_without_earnings_leaves_the_boost_with_the_supplier() -> None:
    earned = split_line(10_000, 1_000, 1500, 500, Rule.normal, 700)
    none = split_line(10_000, 1_000, 1500, 500, Rule.self_purchase_none, 700)
    assert earned[SHOP_BOOST] == 700
    assert none[SHOP_COMMISSION] == none[SHOP_BOOST] == none[SHOP_MARKUP] == 0
    assert none[PLATFORM_FEE] == earned[PLATFORM_FEE] == 500
    assert none[PLATFORM_MARKUP] == 1_000
    # Commission and boost stay in the supplier's share; the fee is the same as ever.
    assert none[SUPPLIER_SHARE] == 10_000 - 500
    assert sum(none.values()) == 11_000
    # The budget is reserved the same whoever earns it: the line's boost of the base.
    assert boost_of(10_000, 1500, 700) == 700


def test_partial_refunds_of_a_boosted_line_reverse_exactly_its_boost() -> None:
    # A's 2 units at 8,000 with 10% commission and 5% boost (tests/campaigns/test_lifecycle.py):
    # one refunded takes back f(2) − f(1) = 800 − 400 of the boost.
    step = reversal(8_000, 0, 2, 1, 1000, 500, Rule.normal, 500)
    assert (step[SHOP_COMMISSION], step[SHOP_BOOST]) == (800, 400)
    assert sum(step.values()) == 8_000


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
def test_boosted_parts_add_up_and_refunds_telescope(
    unit_price: int,
    unit_markup: int,
    quantity: int,
    commission_bps: int,
    fee_bps: int,
    rule: Rule,
    data: st.DataObject,
) -> None:
    # A campaign lets commission + boost fill the price at most; the split copes with more.
    boost_bps = data.draw(
        st.one_of(st.integers(0, 10_000 - commission_bps), bps), label="boost_bps"
    )
    base = unit_price * quantity
    accrued = split_line(base, unit_markup * quantity, commission_bps, fee_bps, rule, boost_bps)
    assert sum(accrued.values()) == (unit_price + unit_markup) * quantity
    assert all(amount >= 0 for amount in accrued.values())
    if rule is not Rule.self_purchase_none:
        assert accrued[SHOP_BOOST] == boost_of(base, commission_bps, boost_bps)
        assert accrued[SHOP_BOOST] <= apply_bps(base, boost_bps)  # half-up, or given way
    kept = quantity
    taken = dict.fromkeys(accrued, 0)
    reserved = boost_of(base, commission_bps, boost_bps)
    given_back = 0
    while kept:
        units = data.draw(st.integers(min_value=1, max_value=kept), label="refunded")
        step = reversal(
            unit_price, unit_markup, kept, kept - units, commission_bps, fee_bps, rule, boost_bps
        )
        assert sum(step.values()) == (unit_price + unit_markup) * units  # the buyer's refund
        # The shop's parts only ever shrink on a refund, and so does what the line holds of
        # the budget (orders/service.give_back gives back f(old) − f(new) of boost_of).
        assert step[SHOP_COMMISSION] >= 0
        assert step[SHOP_BOOST] >= 0
        assert step[SHOP_MARKUP] >= 0
        back = boost_of(unit_price * kept, commission_bps, boost_bps) - boost_of(
            unit_price * (kept - units), commission_bps, boost_bps
        )
        assert back >= 0
        given_back += back
        if rule is not Rule.self_purchase_none:
            assert step[SHOP_BOOST] == back
        for part, amount in step.items():
            taken[part] += amount
            assert taken[part] <= accrued[part]  # never more than accrued, at every step
        kept -= units
    assert taken == accrued
    assert given_back == reserved
