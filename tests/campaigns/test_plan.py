"""campaigns.service.plan and _take_from, without a database: which shards an order takes from,
and what its lines reserve of one budget."""

from __future__ import annotations

import random
import uuid
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from xiaopu.campaigns.service import Plan, Reserved, Terms, _take_from, plan
from xiaopu.commissions.split import boost_of

CAMPAIGN = uuid.UUID("00000000-0000-4000-8000-0000000000c1")


def terms(
    units: list[tuple[int, int]],
    budget: list[tuple[int, int]],
    *,
    price: int = 8_000,
    boost_bps: int = 500,
    variant: uuid.UUID | None = None,
) -> Terms:
    return Terms(
        variant_id=variant or uuid.uuid4(),
        campaign_id=CAMPAIGN,
        price_minor=price,
        boost_bps=boost_bps,
        currency="CNY",
        unit_shards=tuple(units),
        budget_shards=tuple(budget),
        budget_shard_count=len(budget),
    )


def test_a_need_one_shard_covers_is_taken_from_one_covering_shard_at_random() -> None:
    rng = random.Random(7)
    chosen: Counter[int] = Counter()
    for _ in range(200):
        shards = [[1, 1], [2, 5], [3, 2], [4, 5]]
        taken = _take_from(shards, 3, rng)
        assert taken is not None
        ((shard, amount),) = taken
        assert amount == 3
        chosen[shard] += 1
        # The shard taken from is changed in place; the others are not.
        assert {row[0]: row[1] for row in shards} == {1: 1, 2: 5, 3: 2, 4: 5} | {shard: 2}
    # Only the shards that cover 3 are picked, and both of them, so that racing orders spread.
    assert set(chosen) == {2, 4}
    assert min(chosen.values()) > 50


def test_a_need_no_shard_covers_is_taken_from_several() -> None:
    shards = [[1, 2], [2, 3], [3, 1], [4, 3]]
    taken = _take_from(shards, 7, random.Random(1))
    assert taken is not None
    assert sum(amount for _, amount in taken) == 7
    took = dict(taken)
    assert shards == [[i, left - took.get(i, 0)] for i, left in ((1, 2), (2, 3), (3, 1), (4, 3))]


def test_a_need_the_shards_do_not_cover_takes_nothing() -> None:
    shards = [[1, 2], [2, 3]]
    assert _take_from(shards, 6, random.Random(1)) is None
    assert shards == [[1, 2], [2, 3]]
    assert _take_from([], 1, random.Random(1)) is None
    # Nothing needed: nothing taken, even from no shards.
    assert _take_from([], 0, random.Random(1)) == []


def test_a_line_takes_its_units_and_reserves_its_boost() -> None:
    line = terms([(10, 4), (11, 4)], [(20, 1_000), (21, 1_000)])
    got = plan([(line, 2, 1000)], random.Random(3))
    boost = boost_of(16_000, 1000, 500)
    assert boost == 800
    # One shard covered each when read: the statement takes from any shard free then.
    assert got.any_units == {(CAMPAIGN, line.variant_id): 2}
    assert got.any_budget == {(CAMPAIGN, "CNY"): 800}
    assert (got.units, got.budget, got.spread_budget) == ({}, {}, {})
    assert got.lines == {line.variant_id: Reserved(500, False)}


def test_a_line_the_budget_cannot_cover_sells_without_boost_and_takes_no_budget() -> None:
    line = terms([(10, 5)], [(20, 300), (21, 400)])  # 700 left; the line's boost is 800
    got = plan([(line, 2, 1000)], random.Random(3))
    assert got.any_units == {(CAMPAIGN, line.variant_id): 2}
    assert (got.budget, got.any_budget, got.spread_budget) == ({}, {}, {})
    assert got.lines == {line.variant_id: Reserved(0, True)}


def test_a_boost_no_shard_covers_is_spread_over_all_of_the_budgets_shards() -> None:
    line = terms([(10, 5)], [(20, 300), (21, 400), (22, 200)])  # 900 left, 800 needed
    got = plan([(line, 2, 1000)], random.Random(3))
    # The statement works out each shard's part under their locks: (amount, shard count).
    assert got.spread_budget == {(CAMPAIGN, "CNY"): (800, 3)}
    assert (got.budget, got.any_budget) == ({}, {})
    assert got.lines[line.variant_id] == Reserved(500, False)


def test_a_boost_few_shards_cover_is_spread_too() -> None:
    """The last of a budget: fewer than ANY_SHARD_MIN shards have it, and orders would fail
    on each other's picks; spread, they queue instead."""
    budget = [(20, 900), (21, 10), (22, 10), (23, 10), (24, 10)]
    got = plan([(terms([(10, 5)], budget), 2, 1000)], random.Random(3))
    assert got.spread_budget == {(CAMPAIGN, "CNY"): (800, 5)}


def test_a_campaign_without_boost_reserves_nothing() -> None:
    line = terms([(10, 5)], [], boost_bps=0)
    got = plan([(line, 3, 1000)], random.Random(3))
    assert got == Plan(
        {}, {}, {line.variant_id: Reserved(0, False)}, any_units={(CAMPAIGN, line.variant_id): 3}
    )


def test_the_lines_of_one_order_share_what_is_left_of_the_budget() -> None:
    """Two variants of one campaign, each read with the same budget shards: the plan takes the
    second line's boost from what the first left, not from the shards as read."""
    budget = [(20, 1_000)]
    a = terms([(10, 5)], budget)
    b = terms([(30, 5)], budget)
    got = plan([(a, 2, 1000), (b, 1, 1000)], random.Random(3))  # 800, then 400 of 200 left
    assert got.lines == {a.variant_id: Reserved(500, False), b.variant_id: Reserved(0, True)}
    assert got.any_budget == {(CAMPAIGN, "CNY"): 800}
    assert got.any_units == {(CAMPAIGN, a.variant_id): 2, (CAMPAIGN, b.variant_id): 1}

    # With two shards of 800 and 400, both lines fit; no one shard has their 1,200, so the
    # statement takes it from both.
    both = [(20, 800), (21, 400)]
    a, b = terms([(10, 5)], both), terms([(30, 5)], both)
    got = plan([(a, 2, 1000), (b, 1, 1000)], random.Random(3))
    assert got.lines == {a.variant_id: Reserved(500, False), b.variant_id: Reserved(500, False)}
    assert got.spread_budget == {(CAMPAIGN, "CNY"): (1_200, 2)}


def test_a_line_whose_units_are_not_there_is_a_programming_error() -> None:
    line = terms([(10, 1)], [(20, 1_000)])
    try:
        plan([(line, 2, 1000)], random.Random(3))
    except RuntimeError:
        pass
    else:
        raise AssertionError("plan() accepted a line its shards cannot cover")


shard_rows = st.lists(
    st.tuples(st.integers(1, 10_000), st.integers(0, 50)),
    min_size=0,
    max_size=16,
    unique_by=lambda row: row[0],
)


@given(shards=shard_rows, need=st.integers(0, 900), seed=st.integers(0, 2**32))
def test_takes_never_exceed_a_shard_and_sum_to_the_need(
    shards: list[tuple[int, int]], need: int, seed: int
) -> None:
    rows = [list(row) for row in shards]
    taken = _take_from(rows, need, random.Random(seed))
    before = dict(shards)
    total = sum(before.values())
    if need > total:
        assert taken is None
        assert rows == [list(row) for row in shards]
        return
    assert taken is not None
    assert sum(amount for _, amount in taken) == need
    assert len({shard for shard, _ in taken}) == len(taken)  # one take per shard
    for shard, amount in taken:
        assert 0 < amount <= before[shard]
    after = {row[0]: row[1] for row in rows}
    took = dict(taken)
    assert after == {shard: left - took.get(shard, 0) for shard, left in before.items()}


@given(
    budget=shard_rows,
    quantities=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    prices=st.lists(st.integers(1, 20_000), min_size=6, max_size=6),
    boost_bps=st.integers(0, 9000),
    seed=st.integers(0, 2**32),
)
def test_an_orders_boosts_never_take_more_than_the_budget_has(
    budget: list[tuple[int, int]],
    quantities: list[int],
    prices: list[int],
    boost_bps: int,
    seed: int,
) -> None:
    lines = [
        (terms([(100 + i, 10)], budget, price=prices[i], boost_bps=boost_bps), q, 1000)
        for i, q in enumerate(quantities)
    ]
    got = plan(lines, random.Random(seed))
    # What is taken is exactly the boosts of the lines that reserved one, and never more than
    # the budget had when read.
    reserved = sum(
        boost_of(t.price_minor * q, c, t.boost_bps)
        for t, q, c in lines
        if got.lines[t.variant_id].boost_bps
    )
    taken = sum(got.budget.values()) + sum(got.any_budget.values())
    taken += sum(amount for amount, _ in got.spread_budget.values())
    assert taken == reserved <= sum(left for _, left in budget)
    for t, _, _ in lines:
        line = got.lines[t.variant_id]
        assert line.boost_bps in (0, t.boost_bps)
        # Withheld only when the line had a boost to pay.
        assert not line.boost_withheld or t.boost_bps > 0
    # Every unit line takes its units from its own variant's shards.
    assert got.any_units == {(CAMPAIGN, t.variant_id): q for t, q, _ in lines}
