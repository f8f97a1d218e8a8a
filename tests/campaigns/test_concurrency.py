"""Real races on a campaign (its own database, a real pool, real commits): buyers fighting for
its allocation and its boost budget, and units and boost given back (expiry, supplier cancels)
while others buy and while the campaign ends. The allocation and the budget are never exceeded,
and every unit is somewhere: in stock, in a shard, or in an order that keeps it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.campaigns.helpers import act, body, scheduled, sign_up
from tests.conftest import make_settings
from tests.orders.conftest import Live
from tests.orders.helpers import (
    ADDRESS,
    Market,
    checkout,
    market,
    pay,
    place,
    run_schedule,
    supplier_act,
)
from tests.webhooks.helpers import assert_problem
from xiaopu.app import create_app
from xiaopu.campaigns.service import line_boost
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.kit.clock import Clock

pytestmark = pytest.mark.concurrent

REGULAR = 10_000
PRICE = 8_000
BOOST_BPS = 500
UNIT_BOOST = 400  # 8,000 × 5%, within the 90% the 10% commission leaves
STOCK = 100
START = timedelta(minutes=1)
# Refusals a racing checkout may meet: all of them clean 409s.
RACE_REFUSALS = {"concurrent_change", "campaign_units_short", "out_of_stock"}


@pytest.fixture
async def racing(fresh_db_url: str) -> AsyncIterator[Live]:
    """As the `live` fixture, with 4 shards per variant and budget: buyers meet on them often."""
    settings = make_settings(fresh_db_url, db_pool_size=20, db_max_overflow=40, campaign_shards=4)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    app = create_app(settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Live(client, sessionmaker, settings)
    finally:
        await engine.dispose()


def buyer(i: int) -> dict[str, str]:
    return {**ADDRESS, "phone": f"1390013{i:04d}", "recipient": f"买家{i}"}


async def live_campaign(
    live: Live, clock: Clock, *, units: int, budget: int
) -> tuple[Market, dict[str, Any]]:
    """A scheduled campaign the shop signed up to, its start passed (checkout prices by the
    request's clock, so it sells at campaign terms before the job has moved it to live)."""
    async with live.sessionmaker() as session:
        m = await market(
            live.client,
            session,
            price=REGULAR,
            stock=STOCK,
            markup_bps=0,
            commission_bps=1000,
        )
    data = body(
        m.variant,
        clock.now(),
        price=PRICE,
        units=units,
        boost_bps=BOOST_BPS,
        budget=budget,
        warm_up=timedelta(seconds=30),
        start=START,
    )
    campaign = await scheduled(live.client, m.suppliers[0], data)
    joined = await sign_up(live.client, m.keeper, campaign["id"])
    assert joined.status_code == 200, joined.text
    clock.advance(START + timedelta(seconds=1))
    return m, campaign


@dataclass(frozen=True)
class Line:
    order_id: str
    order_status: str
    part_status: str
    campaign_id: str | None
    quantity: int
    returned: int
    unit_price: int
    commission_bps: int
    boost_bps: int
    boost_withheld: bool

    @property
    def kept(self) -> int:
        """Units the order still holds: none once it expired (expiry gives all of them back)."""
        return 0 if self.order_status == "expired" else self.quantity - self.returned

    @property
    def boost(self) -> int:
        """What the line holds of the budget now."""
        if self.campaign_id is None:
            return 0
        return line_boost(self.unit_price, self.kept, self.commission_bps, self.boost_bps)


@dataclass(frozen=True)
class Figures:
    stock: int
    unit_shards: list[int]
    budget_shards: list[int]
    status: str
    lines: list[Line]

    @property
    def units_left(self) -> int:
        return sum(self.unit_shards)

    @property
    def budget_left(self) -> int:
        return sum(self.budget_shards)

    def at_campaign(self) -> list[Line]:
        return [line for line in self.lines if line.campaign_id is not None]

    def regular(self) -> list[Line]:
        return [line for line in self.lines if line.campaign_id is None]


async def figures(live: Live, m: Market, campaign_id: str) -> Figures:
    async with live.sessionmaker() as session:
        stock = await session.scalar(
            text("SELECT stock FROM variants WHERE id = :v"), {"v": m.variant}
        )
        units = await session.scalars(
            text("SELECT units_left FROM campaign_unit_shards WHERE campaign_id = :c ORDER BY id"),
            {"c": campaign_id},
        )
        budget = await session.scalars(
            text(
                "SELECT left_minor FROM campaign_budget_shards WHERE campaign_id = :c ORDER BY id"
            ),
            {"c": campaign_id},
        )
        status = await session.scalar(
            text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign_id}
        )
        rows = await session.execute(
            text(
                "SELECT l.order_id, o.status, so.status, l.campaign_id, l.quantity, "
                "l.returned_quantity, l.unit_price_minor, l.commission_bps, l.boost_bps, "
                "l.boost_withheld FROM order_lines l JOIN orders o ON o.id = l.order_id "
                "JOIN supplier_orders so ON so.id = l.supplier_order_id "
                "WHERE l.variant_id = :v"
            ),
            {"v": m.variant},
        )
        lines = [
            Line(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                None if r[3] is None else str(r[3]),
                *r[4:],
            )
            for r in rows
        ]
    return Figures(int(stock or 0), list(units), list(budget), str(status), lines)


def assert_everything_adds_up(f: Figures, *, allocated: int, budget: int, holding: bool) -> None:
    """No unit made or lost, no shard negative, the budget neither overrun nor leaking."""
    assert len(f.unit_shards) == 4
    assert min(f.unit_shards) >= 0, f.unit_shards
    assert min(f.budget_shards) >= 0, f.budget_shards
    kept = sum(line.kept for line in f.lines)
    assert f.stock + f.units_left + kept == STOCK, (f.stock, f.units_left, kept)
    if holding:
        # Every unit given back so far went to the shards, none to stock.
        sold = sum(line.kept for line in f.at_campaign())
        assert sold + f.units_left == allocated, (sold, f.units_left)
        assert f.stock + sum(line.kept for line in f.regular()) == STOCK - allocated
    else:
        assert f.units_left == 0, f.unit_shards
    reserved = sum(line.boost for line in f.lines)
    assert reserved == budget - f.budget_left, (reserved, budget, f.budget_left)
    assert reserved <= budget
    for line in f.at_campaign():
        assert line.unit_price == PRICE
        assert (line.boost_bps, line.boost_withheld) in ((BOOST_BPS, False), (0, True))
    for line in f.regular():
        assert line.unit_price == REGULAR
        assert (line.boost_bps, line.boost_withheld) == (0, False)


def assert_clean_refusal(response: httpx.Response) -> str:
    """A refusal is a 409 problem+json with a code a racing buyer may meet: never a 500."""
    assert response.status_code == 409, response.text
    problem = assert_problem(response, 409, response.json().get("code"))
    code = str(problem["code"])
    assert code in RACE_REFUSALS, problem
    return code


async def test_fifty_buyers_race_for_thirty_campaign_units_and_a_short_budget(
    racing: Live, test_clock: Clock
) -> None:
    allocated, budget = 30, 10 * UNIT_BOOST  # boosts for 10 of the 30 units
    m, campaign = await live_campaign(racing, test_clock, units=allocated, budget=budget)
    quantities = [2 if i % 3 == 0 else 1 for i in range(50)]  # 67 units asked for
    responses = await asyncio.gather(
        *(
            place(racing.client, m.slug, [(m.variant, q)], address=buyer(i))
            for i, q in enumerate(quantities)
        )
    )

    f = await figures(racing, m, campaign["id"])
    assert_everything_adds_up(f, allocated=allocated, budget=budget, holding=True)
    placed = {}
    for response, quantity in zip(responses, quantities, strict=True):
        if response.status_code != 201:
            code = assert_clean_refusal(response)
            if code == "campaign_units_short":
                # Refused only while 0 < left < quantity when read; left never rises here.
                assert 0 < response.json()["available"] < quantity
                assert f.units_left < quantity
            continue
        order = response.json()
        ((line,),) = [part["lines"] for part in order["supplier_orders"]]
        assert line["quantity"] == quantity
        if line["campaign_id"] is None:
            # At the regular price, from stock: only once the allocation had nothing left.
            assert line["unit_price_minor"] == REGULAR
            assert f.units_left == 0
        else:
            assert (line["campaign_id"], line["unit_price_minor"]) == (campaign["id"], PRICE)
        placed[order["id"]] = line
    assert placed, [r.text for r in responses][:3]
    # Every order answered 201 is stored, with its campaign line as answered; no other is.
    assert {line.order_id for line in f.lines} == set(placed)
    for stored in f.lines:
        answered = placed[stored.order_id]
        assert (stored.campaign_id, stored.quantity) == (
            answered["campaign_id"],
            answered["quantity"],
        )
    sold = sum(line.quantity for line in f.at_campaign())
    assert 0 < sold <= allocated
    assert STOCK - allocated - f.stock == sum(line.quantity for line in f.regular())
    for line in f.at_campaign():
        if line.boost_withheld:
            # Withheld only when what was left could not cover it; the budget only fell since.
            assert f.budget_left < line_boost(PRICE, line.quantity, 1000, BOOST_BPS)

    # After the race, in turn: a line larger than what is left is refused (not split across two
    # prices), what is left sells at the campaign price, and then the regular price from stock.
    left = f.units_left
    if left:
        short = await place(racing.client, m.slug, [(m.variant, left + 1)], address=buyer(900))
        problem = assert_problem(short, 409, "campaign_units_short")
        assert (problem["line"], problem["available"]) == (0, left)
        rest = await checkout(racing.client, m.slug, [(m.variant, left)], address=buyer(901))
        assert rest["supplier_orders"][0]["lines"][0]["campaign_id"] == campaign["id"]
    after = await checkout(racing.client, m.slug, [(m.variant, 2)], address=buyer(902))
    (line,) = after["supplier_orders"][0]["lines"]
    assert (line["campaign_id"], line["unit_price_minor"]) == (None, REGULAR)
    final = await figures(racing, m, campaign["id"])
    assert final.units_left == 0
    assert sum(line.quantity for line in final.at_campaign()) == allocated
    assert final.stock == f.stock - 2
    assert_everything_adds_up(final, allocated=allocated, budget=budget, holding=True)
    # 30 units' boosts are 12,000: the 4,000 budget covered some lines, and the others said so.
    assert any(line.boost_withheld for line in final.at_campaign())
    assert final.budget_left < 2 * UNIT_BOOST


async def _placed_before(
    live: Live, m: Market, count: int, *, paid: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` one-unit orders at campaign terms, the first `paid` of them paid."""
    orders = [
        await checkout(live.client, m.slug, [(m.variant, 1)], address=buyer(500 + i))
        for i in range(count)
    ]
    for order in orders:
        assert order["supplier_orders"][0]["lines"][0]["campaign_id"] is not None
    for order in orders[:paid]:
        await pay(live.client, order)
    return orders[:paid], orders[paid:]


async def _cancel(live: Live, m: Market, order: dict[str, Any]) -> httpx.Response:
    part_id = order["supplier_orders"][0]["id"]
    return await supplier_act(live.client, m.suppliers[0], part_id, "cancel", {"reason": "缺货"})


async def _job(live: Live, name: str) -> None:
    async with live.sessionmaker() as session:
        await run_schedule(session, live.settings, name)


def _buyers(live: Live, m: Market, count: int, first: int) -> list[Awaitable[httpx.Response]]:
    return [
        place(live.client, m.slug, [(m.variant, 1 + i % 2)], address=buyer(first + i))
        for i in range(count)
    ]


async def test_give_backs_racing_checkouts_keep_the_allocation_and_budget_exact(
    racing: Live, test_clock: Clock
) -> None:
    """An expiry batch (twelve orders' units and boost back to the shards, as a job) and
    supplier cancels (the same, per order) while new buyers take from those shards. Giving back
    locks shards in checkout's order: line by line at random, this deadlocked."""
    # A budget for every unit: each buyer takes a budget shard too, where give-backs add.
    allocated, budget = 40, 60 * UNIT_BOOST
    m, campaign = await live_campaign(racing, test_clock, units=allocated, budget=budget)
    paid, unpaid = await _placed_before(racing, m, 16, paid=4)
    before = await figures(racing, m, campaign["id"])
    assert (before.units_left, before.budget_left) == (allocated - 16, budget - 16 * UNIT_BOOST)
    assert_everything_adds_up(before, allocated=allocated, budget=budget, holding=True)
    test_clock.advance(timedelta(minutes=racing.settings.order_expiry_minutes + 1))

    results = await asyncio.gather(
        _job(racing, "orders.expire"),
        *(_cancel(racing, m, order) for order in paid),
        *_buyers(racing, m, 20, 0),
    )

    answers = [r for r in results if isinstance(r, httpx.Response)]
    assert len(answers) == len(results) - 1  # all but the job's
    cancels, bought = answers[: len(paid)], answers[len(paid) :]
    for response in cancels:
        assert response.status_code == 200, response.text
    for response in bought:
        if response.status_code != 201:
            assert_clean_refusal(response)
    f = await figures(racing, m, campaign["id"])
    assert_everything_adds_up(f, allocated=allocated, budget=budget, holding=True)
    # The unpaid twelve expired and the paid four were cancelled: none of them keeps a unit.
    old = {o["id"] for o in paid + unpaid}
    assert all(line.kept == 0 for line in f.lines if line.order_id in old)
    assert sorted(line.order_status for line in f.lines if line.order_id in old) == sorted(
        ["expired"] * 12 + ["paid"] * 4
    )
    assert sum(line.part_status == "cancelled" for line in f.lines) == 4
    new = [line for line in f.lines if line.order_id not in old]
    assert len(new) == sum(r.status_code == 201 for r in bought) > 0
    assert any(line.campaign_id == campaign["id"] for line in new)


@pytest.mark.parametrize("ending", ["supplier", "clock"])
async def test_a_campaign_ending_while_buyers_check_out_and_orders_give_back(
    racing: Live, test_clock: Clock, ending: str
) -> None:
    """The supplier ends the campaign early (or the clock's job ends it at its end) while new
    buyers check out, paid orders are cancelled and unpaid ones expire: whichever goes first,
    each unit ends up in stock or in an order that keeps it, and the budget adds up."""
    allocated, budget = 40, 15 * UNIT_BOOST
    m, campaign = await live_campaign(racing, test_clock, units=allocated, budget=budget)
    paid, _ = await _placed_before(racing, m, 16, paid=8)
    if ending == "supplier":
        test_clock.advance(timedelta(minutes=racing.settings.order_expiry_minutes + 1))
        end: Awaitable[Any] = act(racing.client, m.suppliers[0], campaign["id"], "end")
    else:
        test_clock.advance(timedelta(days=1))  # past the end, and every unpaid order's expiry
        end = _job(racing, "campaigns.tick")

    # The end goes once a few buyers have their answer, while the others are under way (sent
    # together with them, it commits before any of them reads; after all, it races nothing).
    answered = 0
    some_answered = asyncio.Event()

    async def buy(request: Awaitable[httpx.Response]) -> httpx.Response:
        nonlocal answered
        try:
            return await request
        finally:
            answered += 1
            if answered == 4:
                some_answered.set()

    async def end_once_buying() -> Any:
        await some_answered.wait()
        return await end

    results = await asyncio.gather(
        end_once_buying(),
        _job(racing, "orders.expire"),
        *(_cancel(racing, m, order) for order in paid),
        *(buy(request) for request in _buyers(racing, m, 20, 0)),
    )

    if ending == "supplier":
        assert results[0].status_code == 200, results[0].text
        assert results[0].json()["ended_early"] is True
    for response in results[2 : 2 + len(paid)]:
        assert response.status_code == 200, response.text
    for response in results[2 + len(paid) :]:
        if response.status_code != 201:
            assert_clean_refusal(response)
    # The clock's job skips a campaign a give-back holds; its next run ends it.
    await _job(racing, "campaigns.tick")
    f = await figures(racing, m, campaign["id"])
    assert f.status in ("ended", "settled")
    assert_everything_adds_up(f, allocated=allocated, budget=budget, holding=False)
    if ending == "clock":
        # Past the end, every new order is at the regular price, before the job or after it.
        new = [line for line in f.lines if line.order_status != "expired"]
        assert all(line.campaign_id is None for line in new if line.part_status != "cancelled")
    after = await checkout(racing.client, m.slug, [(m.variant, 1)], address=buyer(999))
    assert after["supplier_orders"][0]["lines"][0]["campaign_id"] is None
