"""Queries for campaigns: the supplier's scope, checkout's read and deferred takes, giving back,
the clock's transitions and the results rollup."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import Deferred, Read, defer
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import (
    Campaign,
    CampaignBudget,
    CampaignBudgetShard,
    CampaignItem,
    CampaignResult,
    CampaignShop,
    CampaignStatus,
    CampaignUnitShard,
    Shop,
)

# Statuses in which a campaign's units wait in its shards (set aside at scheduling, swept back
# to stock at the end).
HOLDING = (CampaignStatus.scheduled, CampaignStatus.warm_up, CampaignStatus.live)


# Scopes --------------------------------------------------------------------------------------


def supplier_campaigns(supplier_id: uuid.UUID) -> Select[Campaign]:
    return select(Campaign).where(Campaign.supplier_id == supplier_id)


def any_campaigns() -> Select[Campaign]:
    """Unscoped: for shops, which see campaigns through their own rules, and for jobs."""
    return select(Campaign)


async def one(
    session: AsyncSession,
    stmt: Select[Campaign],
    campaign_id: uuid.UUID,
    *,
    lock: bool = False,
) -> Campaign | None:
    stmt = stmt.where(Campaign.id == campaign_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def page(
    session: AsyncSession, stmt: Select[Campaign], params: PageParams
) -> Sequence[Campaign]:
    return (await session.scalars(newest_first(stmt, Campaign.id, params))).all()


async def items_of(
    session: AsyncSession, campaign_ids: Sequence[uuid.UUID]
) -> Sequence[CampaignItem]:
    if not campaign_ids:
        return []
    stmt = (
        select(CampaignItem)
        .where(CampaignItem.campaign_id.in_(campaign_ids))
        .order_by(CampaignItem.campaign_id, CampaignItem.product_id, CampaignItem.variant_id)
    )
    return (await session.scalars(stmt)).all()


async def budgets_of(
    session: AsyncSession, campaign_ids: Sequence[uuid.UUID]
) -> Sequence[CampaignBudget]:
    if not campaign_ids:
        return []
    stmt = (
        select(CampaignBudget)
        .where(CampaignBudget.campaign_id.in_(campaign_ids))
        .order_by(CampaignBudget.currency)
    )
    return (await session.scalars(stmt)).all()


async def budget_left(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, int]:
    """What is left of each currency's budget, over its shards."""
    return (await budgets_left(session, [campaign_id])).get(campaign_id, {})


async def budgets_left(
    session: AsyncSession, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Per campaign, what is left of each currency's budget (one aggregate for a page)."""
    if not campaign_ids:
        return {}
    stmt = (
        select(
            CampaignBudgetShard.campaign_id,
            CampaignBudgetShard.currency,
            func.sum(CampaignBudgetShard.left_minor),
        )
        .where(CampaignBudgetShard.campaign_id.in_(campaign_ids))
        .group_by(CampaignBudgetShard.campaign_id, CampaignBudgetShard.currency)
    )
    out: dict[uuid.UUID, dict[str, int]] = {}
    for campaign_id, currency, left in (await session.execute(stmt)).all():
        out.setdefault(campaign_id, {})[currency] = int(left)
    return out


async def units_left(
    session: AsyncSession, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
    """Per campaign, the units each variant's shards have left (one aggregate for a page)."""
    if not campaign_ids:
        return {}
    stmt = (
        select(
            CampaignUnitShard.campaign_id,
            CampaignUnitShard.variant_id,
            func.sum(CampaignUnitShard.units_left),
        )
        .where(CampaignUnitShard.campaign_id.in_(campaign_ids))
        .group_by(CampaignUnitShard.campaign_id, CampaignUnitShard.variant_id)
    )
    out: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
    for campaign_id, variant_id, left in (await session.execute(stmt)).all():
        out.setdefault(campaign_id, {})[variant_id] = int(left)
    return out


async def live_ids(session: AsyncSession, limit: int) -> Sequence[uuid.UUID]:
    """Live campaigns, locked, skipping those the clock's tick (or another refresh) holds: it
    refreshes them itself, and two refreshes of one campaign's results would collide."""
    stmt = (
        select(Campaign.id)
        .where(Campaign.status == CampaignStatus.live)
        .order_by(Campaign.starts_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(stmt)).all()


async def overlapping(
    session: AsyncSession,
    variant_ids: Sequence[uuid.UUID],
    since: datetime,
    until: datetime,
    exclude: uuid.UUID,
) -> Sequence[uuid.UUID]:
    """Variants of these that another campaign holding units sells in [since, until)."""
    stmt = (
        select(CampaignItem.variant_id)
        .join(Campaign, Campaign.id == CampaignItem.campaign_id)
        .where(
            CampaignItem.variant_id.in_(variant_ids),
            Campaign.id != exclude,
            Campaign.status.in_(HOLDING),
            Campaign.warm_up_at < until,
            Campaign.ends_at > since,
        )
    )
    return (await session.scalars(stmt)).all()


async def lock_supplier(session: AsyncSession, supplier_id: uuid.UUID) -> None:
    """A lock on scheduling the supplier's campaigns, held to the end of the transaction."""
    key = int.from_bytes(supplier_id.bytes[:8], "big", signed=True) ^ 0x63616D70
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def add_shards(
    session: AsyncSession,
    units: Sequence[tuple[uuid.UUID, uuid.UUID, int, int]],
    budgets: Sequence[tuple[uuid.UUID, str, int, int]],
) -> None:
    """Shard rows: (campaign, variant, shard, units) and (campaign, currency, shard, amount)."""
    session.add_all(
        CampaignUnitShard(campaign_id=c, variant_id=v, shard=n, units_left=u)
        for c, v, n, u in units
    )
    session.add_all(
        CampaignBudgetShard(campaign_id=c, currency=cur, shard=n, left_minor=a)
        for c, cur, n, a in budgets
    )
    await session.flush()


async def sweep_units(session: AsyncSession, campaign_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Empty a campaign's unit shards (its row is locked by the caller): the units per variant,
    for the stock."""
    rows = await session.execute(
        text(
            "WITH taken AS (SELECT id, variant_id, units_left FROM campaign_unit_shards "
            "WHERE campaign_id = :c AND units_left > 0 ORDER BY id FOR UPDATE) "
            "UPDATE campaign_unit_shards s SET units_left = 0 FROM taken "
            "WHERE s.id = taken.id RETURNING taken.variant_id, taken.units_left"
        ),
        {"c": campaign_id},
    )
    swept: dict[uuid.UUID, int] = {}
    for variant_id, units in rows:
        swept[variant_id] = swept.get(variant_id, 0) + int(units)
    return swept


async def shop_entry(
    session: AsyncSession, campaign_id: uuid.UUID, shop_id: uuid.UUID, *, lock: bool = False
) -> CampaignShop | None:
    stmt = select(CampaignShop).where(
        CampaignShop.campaign_id == campaign_id, CampaignShop.shop_id == shop_id
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def shop_entries(
    session: AsyncSession, shop_id: uuid.UUID, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CampaignShop]:
    if not campaign_ids:
        return {}
    stmt = select(CampaignShop).where(
        CampaignShop.shop_id == shop_id, CampaignShop.campaign_id.in_(campaign_ids)
    )
    return {row.campaign_id: row for row in (await session.scalars(stmt)).all()}


def open_to_shop(shop_id: uuid.UUID) -> Select[Campaign]:
    """Campaigns a shop can see: scheduled to live, open to every shop or with the shop on
    their list (invited or signed up)."""
    listed = select(CampaignShop.campaign_id).where(CampaignShop.shop_id == shop_id)
    return select(Campaign).where(
        Campaign.status.in_(HOLDING),
        (Campaign.recruitment == "open") | Campaign.id.in_(listed),
    )


async def invite(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    shop_ids: Sequence[uuid.UUID],
    via: str,
    at: datetime,
) -> list[uuid.UUID]:
    """Invite the shops that exist and are not invited yet; the ids invited now."""
    if not shop_ids:
        return []
    rows = await session.execute(
        text(
            "INSERT INTO campaign_shops (campaign_id, shop_id, invited_at, invited_via, "
            "created_at) SELECT :c, s.id, :at, :via, :at FROM shops s "
            "WHERE s.id = ANY(CAST(:ids AS uuid[])) "
            "ON CONFLICT (campaign_id, shop_id) DO UPDATE SET invited_at = :at, "
            "invited_via = :via WHERE campaign_shops.invited_at IS NULL "
            "RETURNING shop_id"
        ),
        {"c": campaign_id, "ids": list(shop_ids), "via": via, "at": at},
    )
    return [row[0] for row in rows]


async def shops_exist(session: AsyncSession, shop_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    stmt = select(Shop.id).where(Shop.id.in_(shop_ids))
    return set((await session.scalars(stmt)).all())


# Checkout: terms read with the order's other reads, takes deferred to its one statement -------


@dataclass(frozen=True, slots=True)
class Terms:
    """A variant's live campaign terms for the shop an order is placed in, with what its
    shards held when read (only shards with something left)."""

    variant_id: uuid.UUID
    campaign_id: uuid.UUID
    price_minor: int
    boost_bps: int
    currency: str
    unit_shards: tuple[tuple[int, int], ...]  # (shard id, units left)
    budget_shards: tuple[tuple[int, int], ...]  # (shard id, amount left) in the currency
    budget_shard_count: int = 0  # all of them, empty ones too

    @property
    def units_left(self) -> int:
        return sum(units for _, units in self.unit_shards)


# A variant sells at a campaign's terms in a shop signed up to it, from its start (by the
# clock of the request, not the job's) until its end or the supplier's. The shards are the
# campaign's rows by their unique keys, as "id:left,..." (the reads' records cannot carry
# arrays); scalar parameters keep a generic plan.
_TERMS = """
SELECT i.variant_id, c.id, i.price_minor, c.boost_bps, i.currency,
    (SELECT string_agg(u.id || ':' || u.units_left, ',' ORDER BY u.id)
        FROM campaign_unit_shards AS u WHERE u.campaign_id = c.id
        AND u.variant_id = i.variant_id AND u.units_left > 0),
    (SELECT string_agg(b.id || ':' || b.left_minor, ',' ORDER BY b.id)
        FROM campaign_budget_shards AS b WHERE b.campaign_id = c.id
        AND b.currency = i.currency AND b.left_minor > 0),
    (SELECT count(*) FROM campaign_budget_shards AS b WHERE b.campaign_id = c.id
        AND b.currency = i.currency)
FROM campaign_items AS i
JOIN campaigns AS c ON c.id = i.campaign_id
JOIN shops AS s ON s.slug = $1
JOIN campaign_shops AS cs ON cs.campaign_id = c.id AND cs.shop_id = s.id
WHERE i.variant_id IN ({ids})
    AND c.status IN ('scheduled', 'warm_up', 'live')
    AND c.starts_at <= $2 AND $2 < c.ends_at
    AND cs.joined_at IS NOT NULL
"""


@functools.cache
def _terms_sql(count: int) -> str:
    return _TERMS.format(ids=", ".join(f"${i + 3}::uuid" for i in range(count)))


def _shards(listed: str | None) -> tuple[tuple[int, int], ...]:
    if not listed:
        return ()
    pairs = (pair.split(":") for pair in listed.split(","))
    return tuple((int(shard), int(left)) for shard, left in pairs)


def _terms(rows: Sequence[Any]) -> dict[uuid.UUID, Terms]:
    return {
        r[0]: Terms(r[0], r[1], r[2], r[3], r[4], _shards(r[5]), _shards(r[6]), int(r[7]))
        for r in rows
    }


def terms_for(
    shop_slug: str, variant_ids: Sequence[uuid.UUID], at: datetime
) -> Read[dict[uuid.UUID, Terms]]:
    return Read(_terms_sql(len(variant_ids)), (shop_slug, at, *variant_ids), _terms)


_TAKE = """
UPDATE {table} SET {column} = {table}.{column} - t.take
FROM (
    SELECT s.id, w.take FROM {table} AS s
    JOIN (VALUES {rows}) AS w (id, take) ON s.id = w.id
    ORDER BY s.id
    FOR UPDATE OF s
) AS t
WHERE {table}.id = t.id AND {table}.{column} >= t.take
RETURNING {table}.id
"""

# A take from whichever one shard of a key ($1 the campaign, $2 the variant or currency) has
# the amount ($3) when the statement runs, not when the order read them: one that no other
# statement holds, at random, so that concurrent orders neither queue on one row nor fail on a
# row another order took from since they read it. It never waits for a lock: a row lock taken
# and then found short stays held to the statement's end, so a take that could also wait
# would hold and wait in no fixed order, and deadlock against another. No row (every shard
# that has it is held, or none has it): the unit of work runs again on what is there then.
_TAKE_ANY = """
UPDATE {table} SET {column} = {table}.{column} - $3
WHERE {table}.id = (
    SELECT s.id FROM {table} AS s
    WHERE s.campaign_id = $1 AND s.{key} = $2 AND s.{column} >= $3
    ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED)
    AND {table}.{column} >= $3
RETURNING {table}.id
"""

# A take of $3 from all of a campaign's budget shards in a currency ($1, $2) together, for
# when no one of them has it (the last of a budget, left in pieces smaller than a boost): each
# shard locked in id order, and each gives what it has, in that order, until $3 is made up. The
# amounts are worked out on the shards as they are once locked, not as the order read them, so
# orders at once queue here instead of failing each other. Every shard of the key is written
# (most give nothing): one row each, their number known from the read. None if the shards
# together no longer have $3: the unit of work runs again, and that line is withheld.
_TAKE_SPREAD = """
UPDATE campaign_budget_shards SET left_minor = campaign_budget_shards.left_minor - t.take
FROM (
    SELECT s.id,
        least(s.left_minor, greatest(0, $3::bigint - coalesce(sum(s.left_minor) OVER (
            ORDER BY s.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)))::bigint AS take,
        sum(s.left_minor) OVER () AS total
    FROM (
        SELECT b.id, b.left_minor FROM campaign_budget_shards AS b
        WHERE b.campaign_id = $1 AND b.currency = $2
        ORDER BY b.id
        FOR UPDATE
    ) AS s
) AS t
WHERE campaign_budget_shards.id = t.id AND t.total >= $3::bigint
RETURNING campaign_budget_shards.id
"""

_TABLES = {
    "units": ("campaign_unit_shards", "units_left", "variant_id"),
    "budget": ("campaign_budget_shards", "left_minor", "currency"),
}


@functools.cache
def _take_sql(table: str, column: str, count: int) -> str:
    rows = ", ".join(f"(${2 * i + 1}::bigint, ${2 * i + 2}::bigint)" for i in range(count))
    return _TAKE.format(table=table, column=column, rows=rows)


@functools.cache
def _take_any_sql(kind: str) -> str:
    table, column, key = _TABLES[kind]
    return _TAKE_ANY.format(table=table, column=column, key=key)


async def take(
    session: AsyncSession,
    units: Sequence[tuple[int, int]],
    budget: Sequence[tuple[int, int]],
    any_units: Sequence[tuple[uuid.UUID, uuid.UUID, int]] = (),
    any_budget: Sequence[tuple[uuid.UUID, str, int]] = (),
    spread_budget: Sequence[tuple[uuid.UUID, str, int, int]] = (),
) -> None:
    """Take with the unit of work's commit, all of it or, if the shards no longer have it,
    none (the unit of work fails with ConcurrentChange and runs again on the shards as they
    are then): (shard id, amount) from named unit and budget shards, locked in id order per
    table as every other writer of them does; and (campaign, variant, units) and (campaign,
    currency, amount) each from one shard of its key chosen as the statement runs (_TAKE_ANY;
    one such take per key and order, so two parts of the statement never write one row); and
    (campaign, currency, amount, shard count) from all of a budget's shards (_TAKE_SPREAD).
    Unit shards go before budget shards, in every order, so no two orders wait for each other
    across the two tables."""
    for kind, rows, anywhere in (("units", units, any_units), ("budget", budget, any_budget)):
        if rows:
            table, column, _ = _TABLES[kind]
            params = tuple(value for row in rows for value in row)
            sql = _take_sql(table, column, len(rows))
            await defer(session, Deferred((sql,), params, expect=len(rows)))
        for row in anywhere:
            await defer(session, Deferred((_take_any_sql(kind),), row, expect=1))
    for campaign_id, currency, amount, count in spread_budget:
        await defer(
            session, Deferred((_TAKE_SPREAD,), (campaign_id, currency, amount), expect=count)
        )


# Giving back ---------------------------------------------------------------------------------


async def status_for_share(session: AsyncSession, campaign_id: uuid.UUID) -> CampaignStatus:
    """The campaign's status, its row held (FOR SHARE) until the caller commits, so that its
    end, which sweeps the shards, waits for a give-back that read it live, or goes first."""
    stmt = select(Campaign.status).where(Campaign.id == campaign_id).with_for_update(read=True)
    return (await session.execute(stmt)).scalar_one()


# Giving back adds to one shard, picked at random, per (campaign, variant) and per (campaign,
# currency): all the unit shards in one statement, then all the budget shards in another, each
# locking its rows in id order. This is checkout's order (its takes lock unit shards, then
# budget shards, by id), so a give-back and a checkout queue instead of deadlocking. Adding line
# by line, a unit shard and a budget shard in turn at random, deadlocked with checkouts
# (tests/campaigns/test_concurrency.py: an expiry batch while buyers check out).
_ADD_UNITS = """
UPDATE campaign_unit_shards SET units_left = campaign_unit_shards.units_left + t.n
FROM (
    SELECT s.id, p.n FROM campaign_unit_shards AS s
    JOIN (
        SELECT DISTINCT ON (r.c, r.v) u.id, r.n
        FROM unnest(CAST(:cs AS uuid[]), CAST(:vs AS uuid[]), CAST(:ns AS bigint[]))
            AS r (c, v, n)
        JOIN campaign_unit_shards AS u ON u.campaign_id = r.c AND u.variant_id = r.v
        ORDER BY r.c, r.v, random()
    ) AS p ON p.id = s.id
    ORDER BY s.id
    FOR UPDATE OF s
) AS t
WHERE campaign_unit_shards.id = t.id
"""

_ADD_BUDGET = """
UPDATE campaign_budget_shards SET left_minor = campaign_budget_shards.left_minor + t.n
FROM (
    SELECT s.id, p.n FROM campaign_budget_shards AS s
    JOIN (
        SELECT DISTINCT ON (r.c, r.cur) b.id, r.n
        FROM unnest(CAST(:cs AS uuid[]), CAST(:curs AS text[]), CAST(:ns AS bigint[]))
            AS r (c, cur, n)
        JOIN campaign_budget_shards AS b ON b.campaign_id = r.c AND b.currency = r.cur
        ORDER BY r.c, r.cur, random()
    ) AS p ON p.id = s.id
    ORDER BY s.id
    FOR UPDATE OF s
) AS t
WHERE campaign_budget_shards.id = t.id
"""


async def add_back(
    session: AsyncSession,
    units: dict[tuple[uuid.UUID, uuid.UUID], int],
    budget: dict[tuple[uuid.UUID, str], int],
) -> None:
    """Add units per (campaign, variant) and boost per (campaign, currency) back to a shard of
    each: unit shards first, then budget shards, each in id order (as checkout takes them)."""
    if units:
        keys = sorted(units)
        await session.execute(
            text(_ADD_UNITS),
            {
                "cs": [c for c, _ in keys],
                "vs": [v for _, v in keys],
                "ns": [units[k] for k in keys],
            },
        )
    if budget:
        keys_b = sorted(budget)
        await session.execute(
            text(_ADD_BUDGET),
            {
                "cs": [c for c, _ in keys_b],
                "curs": [cur for _, cur in keys_b],
                "ns": [budget[k] for k in keys_b],
            },
        )


# The clock -----------------------------------------------------------------------------------


async def due(session: AsyncSession, now: datetime, limit: int) -> Sequence[Campaign]:
    """Campaigns whose state the clock may move now (or whose results need refreshing),
    locked, skipping those another worker holds."""
    soon = now + timedelta(hours=1)  # campaign.starting is announced an hour ahead
    stmt = (
        select(Campaign)
        .where(
            or_(
                Campaign.status.in_([CampaignStatus.live, CampaignStatus.ended]),
                (Campaign.status == CampaignStatus.scheduled)
                & ((Campaign.warm_up_at <= now) | (Campaign.starts_at <= soon)),
                (Campaign.status == CampaignStatus.warm_up) & (Campaign.starts_at <= soon),
            )
        )
        .order_by(Campaign.starts_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).all()


async def open_campaign_orders(session: AsyncSession, campaign_id: uuid.UUID) -> bool:
    """Whether a supplier order with a line of this campaign is not final yet."""
    found = await session.execute(
        text(
            "SELECT 1 FROM order_lines l JOIN supplier_orders so ON so.id = l.supplier_order_id "
            "WHERE l.campaign_id = :c AND so.status NOT IN ('completed', 'cancelled', 'expired') "
            "LIMIT 1"
        ),
        {"c": campaign_id},
    )
    return found.first() is not None


async def any_withheld(session: AsyncSession, campaign_id: uuid.UUID) -> bool:
    found = await session.execute(
        text("SELECT 1 FROM order_lines WHERE campaign_id = :c AND boost_withheld LIMIT 1"),
        {"c": campaign_id},
    )
    return found.first() is not None


# Each paid line of the campaign, by shop and product: GMV is what buyers paid for the lines
# (markup included), refunds what was refunded of them, and the boost what the ledger's boost
# parts stand at (accrued less reversed).
_REFRESH = [
    "DELETE FROM campaign_results WHERE campaign_id = :c",
    """
    INSERT INTO campaign_results (campaign_id, shop_id, product_id, currency, orders, units,
        gmv_minor, refunded_units, refunds_minor, boost_minor, unboosted_units)
    SELECT l.campaign_id, o.shop_id, l.product_id, l.currency, count(DISTINCT o.id),
        sum(l.quantity), sum(l.base_minor + l.markup_minor), sum(l.returned_quantity),
        sum(l.returned_quantity * (l.unit_price_minor + l.unit_markup_minor)),
        coalesce(sum(b.boost), 0),
        coalesce(sum(l.quantity) FILTER (WHERE l.boost_withheld), 0)
    FROM order_lines l
    JOIN orders o ON o.id = l.order_id
    LEFT JOIN LATERAL (
        SELECT sum(c.accrued_minor - c.reversed_minor) AS boost FROM commissions c
        WHERE c.supplier_order_id = l.supplier_order_id AND c.order_line_id = l.id
            AND c.kind = 'boost'
    ) b ON true
    WHERE l.campaign_id = :c AND o.paid_at IS NOT NULL
    GROUP BY l.campaign_id, o.shop_id, l.product_id, l.currency
    """,
]


async def refresh_results(session: AsyncSession, campaign_id: uuid.UUID, at: datetime) -> None:
    for sql in _REFRESH:
        await session.execute(text(sql), {"c": campaign_id})
    await session.execute(
        update(Campaign).where(Campaign.id == campaign_id).values(results_refreshed_at=at)
    )


@dataclass(frozen=True, slots=True)
class Standing:
    shop_id: uuid.UUID
    shop_name: str
    shop_slug: str
    currency: str
    orders: int
    units: int
    gmv_minor: int
    refunds_minor: int
    boost_minor: int


async def leaderboard(
    session: AsyncSession, campaign_id: uuid.UUID, limit: int, offset: int
) -> list[Standing]:
    rows = await session.execute(
        text(
            "SELECT r.shop_id, s.name, s.slug, r.currency, sum(r.orders)::int, "
            "sum(r.units)::int, sum(r.gmv_minor)::bigint, sum(r.refunds_minor)::bigint, "
            "sum(r.boost_minor)::bigint FROM campaign_results r JOIN shops s ON s.id = r.shop_id "
            "WHERE r.campaign_id = :c GROUP BY r.shop_id, s.name, s.slug, r.currency "
            "ORDER BY sum(r.gmv_minor) DESC, r.shop_id LIMIT :limit OFFSET :offset"
        ),
        {"c": campaign_id, "limit": limit, "offset": offset},
    )
    return [Standing(*row) for row in rows]


async def results(session: AsyncSession, campaign_id: uuid.UUID) -> Sequence[CampaignResult]:
    stmt = select(CampaignResult).where(CampaignResult.campaign_id == campaign_id)
    return (await session.scalars(stmt)).all()


async def lines_given_back(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> Sequence[Any]:
    """Campaign lines of these orders: what giving them back needs."""
    rows = await session.execute(
        text(
            "SELECT campaign_id, variant_id, currency, quantity, returned_quantity, "
            "unit_price_minor, commission_bps, boost_bps FROM order_lines "
            "WHERE order_id = ANY(CAST(:ids AS uuid[])) AND campaign_id IS NOT NULL"
        ),
        {"ids": list(order_ids)},
    )
    return rows.all()


# Storefront: what a shop's pages and share-link previews show of its campaigns ---------------


@dataclass(frozen=True, slots=True)
class ShownRow:
    """One variant of a campaign a shop signed up to, as its pages would show it."""

    campaign_id: uuid.UUID
    title: str
    warm_up_at: datetime
    starts_at: datetime
    ends_at: datetime
    product_id: uuid.UUID
    variant_id: uuid.UUID
    currency: str
    price_minor: int  # the campaign's (supplier's) price
    regular_minor: int  # the variant's (supplier's) price now
    markup_bps: int  # the shop's markup on the product, and the supplier's ceiling on it
    ceiling_bps: int
    units_left: int


# The campaigns of these products a shop signed up to that have not ended at $2 (those not yet
# warming up too, so that a cache of the page knows when it next changes), by the rules checkout
# sells by (_TERMS): status from scheduled to live, the times decide. Only products the shop
# carries; the markup is the shop's, so the caller prices as checkout does.
_SHOWN = """
SELECT c.id, c.title, c.warm_up_at, c.starts_at, c.ends_at, i.product_id, i.variant_id,
    i.currency, i.price_minor, v.price_minor, sp.markup_bps, p.markup_ceiling_bps,
    (SELECT coalesce(sum(u.units_left), 0)::int FROM campaign_unit_shards AS u
        WHERE u.campaign_id = c.id AND u.variant_id = i.variant_id)
FROM shops AS s
JOIN campaign_shops AS cs ON cs.shop_id = s.id AND cs.joined_at IS NOT NULL
JOIN campaigns AS c ON c.id = cs.campaign_id
JOIN campaign_items AS i ON i.campaign_id = c.id
JOIN variants AS v ON v.id = i.variant_id
JOIN products AS p ON p.id = i.product_id
JOIN shop_products AS sp ON sp.shop_id = s.id AND sp.product_id = i.product_id
WHERE s.slug = $1
    AND i.product_id IN ({ids})
    AND c.status IN ('scheduled', 'warm_up', 'live')
    AND $2 < c.ends_at
ORDER BY c.warm_up_at, c.id, i.variant_id
"""


@functools.cache
def _shown_sql(count: int) -> str:
    return _SHOWN.format(ids=", ".join(f"${i + 3}::uuid" for i in range(count)))


def _shown(rows: Sequence[Any]) -> list[ShownRow]:
    return [ShownRow(*row) for row in rows]


def shown(shop_slug: str, product_ids: Sequence[uuid.UUID], at: datetime) -> Read[list[ShownRow]]:
    return Read(_shown_sql(len(product_ids)), (shop_slug, at, *product_ids), _shown)
