"""Brand campaigns (超级品牌团): made and scheduled by suppliers, joined by shops, sold through
checkout at campaign terms, moved by the clock, and settled against the ledger.

Money rules (PRODUCT.md, Growth engine): a campaign line freezes its campaign price and boost
rate at checkout; boost = (base × boost_bps + 5000) // 10000, paid from the supplier's share and
reversed f(old) − f(new) like commission (commissions/split.py). Checkout reserves each line's
boost against the budget and takes its units from the allocation, in the order's one statement;
expiry, cancel and refunds give both back. A line that what is left cannot cover sells at the
campaign price without boost (`boost_withheld`), and `campaign.budget_exhausted` fires once.
"""

from __future__ import annotations

import enum
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.campaigns import repository
from xiaopu.campaigns.repository import HOLDING
from xiaopu.campaigns.repository import Terms as Terms
from xiaopu.campaigns.schemas import (
    BriefOut,
    BudgetOut,
    CampaignIn,
    CampaignOut,
    InvitationsOut,
    ItemOut,
    LeaderboardOut,
    ProductResult,
    ResultsOut,
    ShopCampaignOut,
    ShopResult,
    StandingOut,
)
from xiaopu.catalogue import service as catalogue
from xiaopu.commissions.split import boost_of
from xiaopu.config import Settings
from xiaopu.db import Read, read_together
from xiaopu.errors import AppError, Conflict, InvalidCursor, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.money import shop_price
from xiaopu.kit.pagination import Page, PageParams, decode_cursor, encode_cursor, id_page
from xiaopu.models import (
    Campaign,
    CampaignBudget,
    CampaignItem,
    CampaignShop,
    CampaignStatus,
    Recruitment,
)
from xiaopu.shops import service as shops
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

MAX_DAYS = 14
# Announced this long before the sale starts (campaign.starting).
STARTING_NOTICE = timedelta(hours=1)
LEADERBOARD_MAX = 500


class CampaignNotFound(NotFound):
    code = "campaign_not_found"
    title = "Campaign not found"


class InvalidCampaign(AppError):
    status = 422
    code = "invalid_campaign"
    title = "The campaign's terms do not hold together"


class CampaignNotDraft(Conflict):
    code = "campaign_not_draft"
    title = "Only a draft campaign can be changed or scheduled"


class CampaignStartPassed(Conflict):
    code = "campaign_start_passed"
    title = "The campaign's start has passed"


class CampaignOverlap(Conflict):
    code = "campaign_overlap"
    title = "A variant is in another campaign at the same time"


class CampaignNotRunning(Conflict):
    code = "campaign_not_running"
    title = "The campaign has ended already"


class RecruitmentClosed(Conflict):
    code = "campaign_recruitment_closed"
    title = "Shops sign up before the campaign starts"


class NotInvited(NotFound):
    """An invitation-only campaign is invisible to shops not on its list."""

    code = "campaign_not_found"
    title = "Campaign not found"


# Supplier's campaigns --------------------------------------------------------------------------


def _check_terms(
    data: CampaignIn, sales: dict[uuid.UUID, catalogue.ForSale], supplier_id: uuid.UUID
) -> None:
    problems: list[str] = []
    if not data.warm_up_at <= data.starts_at < data.ends_at:
        problems.append("warm_up_at ≤ starts_at < ends_at")
    if data.ends_at - data.starts_at > timedelta(days=MAX_DAYS):
        problems.append(f"a campaign sells for at most {MAX_DAYS} days")
    seen: set[uuid.UUID] = set()
    currencies: set[str] = set()
    for index, item in enumerate(data.items):
        sale = sales.get(item.variant_id)
        if item.variant_id in seen:
            problems.append(f"items[{index}]: a variant appears twice")
        seen.add(item.variant_id)
        if sale is None or sale.supplier_id != supplier_id:
            problems.append(f"items[{index}]: no such variant of yours")
            continue
        currencies.add(sale.currency)
        if item.price_minor > sale.price_minor:
            problems.append(
                f"items[{index}]: the campaign price {item.price_minor} is above the regular "
                f"price {sale.price_minor}"
            )
        commission = catalogue.sale_commission(sale)
        if commission + data.boost_bps > 10000:
            problems.append(
                f"items[{index}]: commission {commission} + boost {data.boost_bps} bps exceeds "
                "the price"
            )
    budgets = [b.currency for b in data.budgets]
    if len(set(budgets)) != len(budgets):
        problems.append("one budget per currency")
    if data.boost_bps and not currencies <= set(budgets):
        problems.append(
            f"a boost needs a budget in each currency of the items: {sorted(currencies)}"
        )
    if problems:
        raise InvalidCampaign("; ".join(problems), extra={"problems": problems})


async def create(session: AsyncSession, supplier_id: uuid.UUID, data: CampaignIn) -> CampaignOut:
    """A draft: checked against the supplier's variants now, and again when scheduled."""
    variant_ids = [item.variant_id for item in data.items]
    (sales,) = await read_together(session, catalogue.for_sale(variant_ids))
    _check_terms(data, sales, supplier_id)
    campaign = Campaign(
        id=new_id(),
        supplier_id=supplier_id,
        title=data.title,
        brief=data.brief.model_dump(mode="json"),
        recruitment=data.recruitment,
        boost_bps=data.boost_bps,
        status=CampaignStatus.draft,
        warm_up_at=data.warm_up_at,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
    )
    session.add(campaign)
    await session.flush()
    session.add_all(
        CampaignItem(
            campaign_id=campaign.id,
            variant_id=item.variant_id,
            product_id=sales[item.variant_id].product_id,
            currency=sales[item.variant_id].currency,
            price_minor=item.price_minor,
            regular_price_minor=sales[item.variant_id].price_minor,
            allocated_units=item.allocated_units,
        )
        for item in data.items
    )
    session.add_all(
        CampaignBudget(campaign_id=campaign.id, currency=b.currency, budget_minor=b.amount_minor)
        for b in data.budgets
    )
    await session.flush()
    return (await _outs(session, [campaign]))[0]


async def _supplier_campaign(
    session: AsyncSession, supplier_id: uuid.UUID, campaign_id: uuid.UUID, *, lock: bool = False
) -> Campaign:
    campaign = await repository.one(
        session, repository.supplier_campaigns(supplier_id), campaign_id, lock=lock
    )
    if campaign is None:
        raise CampaignNotFound()
    return campaign


async def get(session: AsyncSession, supplier_id: uuid.UUID, campaign_id: uuid.UUID) -> CampaignOut:
    campaign = await _supplier_campaign(session, supplier_id, campaign_id)
    return (await _outs(session, [campaign]))[0]


async def list_for_supplier(
    session: AsyncSession, supplier_id: uuid.UUID, page: PageParams
) -> Page[CampaignOut]:
    rows = await repository.page(session, repository.supplier_campaigns(supplier_id), page)
    items, cursor = id_page(rows, page, lambda c: c.id)
    return Page[CampaignOut](items=await _outs(session, items), next_cursor=cursor)


def _shares(total: int, count: int) -> list[int]:
    """`total` split over `count` rows as evenly as whole units allow."""
    base, extra = divmod(total, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


async def schedule(
    session: AsyncSession, settings: Settings, supplier_id: uuid.UUID, campaign_id: uuid.UUID
) -> CampaignOut:
    """draft → scheduled: recruitment opens, and the allocated units leave the variants' stock
    for the campaign's shards (the budget's shards are made too). From here the campaign's
    terms are fixed: it can be ended early, never extended or repriced."""
    campaign = await _supplier_campaign(session, supplier_id, campaign_id, lock=True)
    if campaign.status is not CampaignStatus.draft:
        raise CampaignNotDraft()
    now = utcnow()
    if campaign.starts_at <= now:
        raise CampaignStartPassed("Move the start into the future: make a new campaign.")
    items = await repository.items_of(session, [campaign.id])
    budgets = await repository.budgets_of(session, [campaign.id])
    # The terms again, on the variants as they are now (a price may have fallen since).
    (sales,) = await read_together(session, catalogue.for_sale([i.variant_id for i in items]))
    again = CampaignIn(
        title=campaign.title,
        boost_bps=campaign.boost_bps,
        budgets=[{"currency": b.currency, "amount_minor": b.budget_minor} for b in budgets],
        warm_up_at=campaign.warm_up_at,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        items=[
            {
                "variant_id": i.variant_id,
                "price_minor": i.price_minor,
                "allocated_units": i.allocated_units,
            }
            for i in items
        ],
    )
    _check_terms(again, sales, supplier_id)
    # One supplier's campaigns are scheduled one at a time, so two cannot both find the
    # other's variants free.
    await repository.lock_supplier(session, supplier_id)
    taken = await repository.overlapping(
        session, [i.variant_id for i in items], campaign.warm_up_at, campaign.ends_at, campaign.id
    )
    if taken:
        raise CampaignOverlap(
            "A variant can be in one campaign at a time.",
            extra={"variant_ids": sorted(str(v) for v in set(taken))},
        )
    await catalogue.set_aside(
        session, supplier_id, {i.variant_id: i.allocated_units for i in items}
    )
    count = settings.campaign_shards
    await repository.add_shards(
        session,
        [
            (campaign.id, i.variant_id, n, units)
            for i in items
            for n, units in enumerate(_shares(i.allocated_units, count))
        ],
        [
            (campaign.id, b.currency, n, amount)
            for b in budgets
            for n, amount in enumerate(_shares(b.budget_minor, count))
        ],
    )
    for item in items:
        item.regular_price_minor = sales[item.variant_id].price_minor
    campaign.status = CampaignStatus.scheduled
    campaign.scheduled_at = now
    await session.flush()
    await _emit(session, EventType.campaign_scheduled, campaign)
    return (await _outs(session, [campaign]))[0]


async def end(session: AsyncSession, supplier_id: uuid.UUID, campaign_id: uuid.UUID) -> CampaignOut:
    """End a campaign now: a live one stops selling at campaign terms, a scheduled or warming
    one is called off. The units not sold go back to the variants' stock."""
    campaign = await _supplier_campaign(session, supplier_id, campaign_id, lock=True)
    if campaign.status not in HOLDING:
        raise CampaignNotRunning()
    await _end(session, campaign, utcnow(), early=True)
    return (await _outs(session, [campaign]))[0]


async def _end(session: AsyncSession, campaign: Campaign, now: datetime, *, early: bool) -> None:
    swept = await repository.sweep_units(session, campaign.id)
    await catalogue.give_back_stock(session, {v: n for v, n in swept.items() if n})
    campaign.status = CampaignStatus.ended
    campaign.ended_at = min(now, campaign.ends_at)
    campaign.ended_early = early and now < campaign.ends_at
    await session.flush()
    await _emit(session, EventType.campaign_ended, campaign)


async def invite(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    campaign_id: uuid.UUID,
    shop_ids: Sequence[uuid.UUID],
    recommended: Sequence[uuid.UUID],
) -> InvitationsOut:
    """Put shops on the campaign's list: named ones, and those matching recommended (the
    endpoint finds them). Invited shops sign up themselves."""
    campaign = await _supplier_campaign(session, supplier_id, campaign_id, lock=True)
    if campaign.status not in (
        CampaignStatus.draft,
        CampaignStatus.scheduled,
        CampaignStatus.warm_up,
    ):
        raise RecruitmentClosed()
    existing = await repository.shops_exist(session, list(shop_ids))
    unknown = [s for s in shop_ids if s not in existing]
    now = utcnow()
    invited = await repository.invite(
        session, campaign.id, [s for s in shop_ids if s in existing], "shop_id", now
    )
    extra = [s for s in dict.fromkeys(recommended) if s not in set(shop_ids)]
    invited += await repository.invite(session, campaign.id, extra, "recommendation", now)
    return InvitationsOut(invited=invited, unknown=unknown)


def product_ids(campaign: CampaignOut) -> list[uuid.UUID]:
    return list(dict.fromkeys(item.product_id for item in campaign.items))


async def _outs(session: AsyncSession, campaigns: Sequence[Campaign]) -> list[CampaignOut]:
    ids = [c.id for c in campaigns]
    items: dict[uuid.UUID, list[CampaignItem]] = defaultdict(list)
    for item in await repository.items_of(session, ids):
        items[item.campaign_id].append(item)
    budgets: dict[uuid.UUID, list[CampaignBudget]] = defaultdict(list)
    for budget in await repository.budgets_of(session, ids):
        budgets[budget.campaign_id].append(budget)
    held = [c.id for c in campaigns if c.status in HOLDING]
    units_of = await repository.units_left(session, held)
    left_of = await repository.budgets_left(
        session, [c.id for c in campaigns if c.status is not CampaignStatus.draft]
    )
    out = []
    for c in campaigns:
        holding = c.status is not CampaignStatus.draft
        units = units_of.get(c.id, {})
        left = left_of.get(c.id, {})
        out.append(
            CampaignOut(
                id=c.id,
                supplier_id=c.supplier_id,
                title=c.title,
                brief=_brief(c),
                recruitment=c.recruitment,
                boost_bps=c.boost_bps,
                status=c.status,
                warm_up_at=c.warm_up_at,
                starts_at=c.starts_at,
                ends_at=c.ends_at,
                scheduled_at=c.scheduled_at,
                ended_at=c.ended_at,
                ended_early=c.ended_early,
                budget_exhausted_at=c.budget_exhausted_at,
                settled_at=c.settled_at,
                results_refreshed_at=c.results_refreshed_at,
                items=[
                    _item_out(i, units.get(i.variant_id) if c.status in HOLDING else None)
                    for i in items[c.id]
                ],
                budgets=[
                    BudgetOut(
                        currency=b.currency,
                        budget_minor=b.budget_minor,
                        left_minor=left.get(b.currency) if holding else None,
                        released_minor=b.released_minor,
                    )
                    for b in budgets[c.id]
                ],
                created_at=c.created_at,
            )
        )
    return out


def _brief(c: Campaign) -> BriefOut:
    brief: dict[str, Any] = c.brief or {}
    return BriefOut(
        selling_points=brief.get("selling_points", []),
        images=brief.get("images", []),
        share_text=brief.get("share_text", ""),
    )


def _item_out(i: CampaignItem, units_left: int | None) -> ItemOut:
    return ItemOut(
        variant_id=i.variant_id,
        product_id=i.product_id,
        currency=i.currency,
        price_minor=i.price_minor,
        regular_price_minor=i.regular_price_minor,
        allocated_units=i.allocated_units,
        units_left=units_left,
    )


# Shops -----------------------------------------------------------------------------------------


def _can_join(campaign: Campaign, entry: CampaignShop | None, now: datetime) -> bool:
    recruiting = campaign.status in (CampaignStatus.scheduled, CampaignStatus.warm_up)
    allowed = campaign.recruitment is Recruitment.open or (
        entry is not None and entry.invited_at is not None
    )
    return (
        recruiting
        and now < campaign.starts_at
        and allowed
        and (entry is None or entry.joined_at is None)
    )


async def _shop_outs(
    session: AsyncSession, shop_id: uuid.UUID, campaigns: Sequence[Campaign]
) -> list[ShopCampaignOut]:
    entries = await repository.shop_entries(session, shop_id, [c.id for c in campaigns])
    items: dict[uuid.UUID, list[CampaignItem]] = defaultdict(list)
    for item in await repository.items_of(session, [c.id for c in campaigns]):
        items[item.campaign_id].append(item)
    now = utcnow()
    units_of = await repository.units_left(
        session, [c.id for c in campaigns if c.status in HOLDING]
    )
    out = []
    for c in campaigns:
        entry = entries.get(c.id)
        units = units_of.get(c.id, {})
        out.append(
            ShopCampaignOut(
                id=c.id,
                supplier_id=c.supplier_id,
                title=c.title,
                brief=_brief(c),
                boost_bps=c.boost_bps,
                status=c.status,
                warm_up_at=c.warm_up_at,
                starts_at=c.starts_at,
                ends_at=c.ends_at,
                invited=entry is not None and entry.invited_at is not None,
                joined_at=entry.joined_at if entry else None,
                can_join=_can_join(c, entry, now),
                items=[
                    _item_out(i, units.get(i.variant_id) if c.status in HOLDING else None)
                    for i in items[c.id]
                ],
            )
        )
    return out


async def list_for_shop(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[ShopCampaignOut]:
    """Campaigns the caller's shop may see: open ones and those it is on the list of, from
    scheduling to their end, newest first."""
    shop = await shops.shop_of(session, account_id)
    rows = await repository.page(session, repository.open_to_shop(shop.id), page)
    items, cursor = id_page(rows, page, lambda c: c.id)
    return Page[ShopCampaignOut](
        items=await _shop_outs(session, shop.id, items), next_cursor=cursor
    )


async def _visible(
    session: AsyncSession, shop_id: uuid.UUID, campaign_id: uuid.UUID, *, lock: bool = False
) -> Campaign:
    campaign = await repository.one(
        session, repository.open_to_shop(shop_id), campaign_id, lock=lock
    )
    if campaign is None:
        # Ended ones stay visible to the shops that joined them.
        entry = await repository.shop_entry(session, campaign_id, shop_id)
        if entry is not None and entry.joined_at is not None:
            campaign = await repository.one(session, repository.any_campaigns(), campaign_id)
    if campaign is None:
        raise CampaignNotFound()
    return campaign


async def get_for_shop(
    session: AsyncSession, account_id: uuid.UUID, campaign_id: uuid.UUID
) -> ShopCampaignOut:
    shop = await shops.shop_of(session, account_id)
    campaign = await _visible(session, shop.id, campaign_id)
    return (await _shop_outs(session, shop.id, [campaign]))[0]


async def join(
    session: AsyncSession, account_id: uuid.UUID, campaign_id: uuid.UUID
) -> ShopCampaignOut:
    """Sign the caller's shop up (during recruitment and warm-up): from the start, its orders
    of the campaign's variants sell at campaign terms. Signing up again changes nothing."""
    shop = await shops.shop_of(session, account_id)
    campaign = await _visible(session, shop.id, campaign_id)
    entry = await repository.shop_entry(session, campaign.id, shop.id, lock=True)
    if entry is not None and entry.joined_at is not None:
        return (await _shop_outs(session, shop.id, [campaign]))[0]
    now = utcnow()
    if not _can_join(campaign, entry, now):
        raise RecruitmentClosed()
    if entry is None:
        entry = CampaignShop(campaign_id=campaign.id, shop_id=shop.id, joined_at=now)
        session.add(entry)
    else:
        entry.joined_at = now
    await session.flush()
    return (await _shop_outs(session, shop.id, [campaign]))[0]


# Checkout --------------------------------------------------------------------------------------


def terms_for(
    shop_slug: str, variant_ids: Sequence[uuid.UUID], at: datetime
) -> Read[dict[uuid.UUID, Terms]]:
    """The campaign terms the shop sells these variants at, at `at`: a read to ask with
    checkout's others (only for a shop signed up, between the start and the end)."""
    return repository.terms_for(shop_slug, variant_ids, at)


@dataclass(frozen=True, slots=True)
class Reserved:
    """What a campaign line reserved: its boost rate (0 when withheld) and whether the budget
    could not cover it."""

    boost_bps: int
    boost_withheld: bool


# A budget's take goes to any one shard while at least this many shards had it when read (or
# all of them had, for a budget of fewer shards): an order fails to find one free (the unit of
# work runs again) only if every one of them is held by an order being written at that moment.
# With fewer, the take is spread over all of the budget's shards (_TAKE_SPREAD in the
# repository), which waits instead.
ANY_SHARD_MIN = 4


@dataclass(slots=True)
class Plan:
    """The shard takes of one order's campaign lines, and what each line reserved. A key's
    take (a variant's units, a campaign's budget in a currency) that one shard covered when
    read is left to the statement to place on any shard that has it (`any_units`,
    `any_budget`); a boost that needs several shards is spread over them by the statement
    (`spread_budget`); only units that need several shards name them (`units`: shard id to
    amount; `budget` is the same for budget shards, and left empty by plan())."""

    units: dict[int, int]
    budget: dict[int, int]
    lines: dict[uuid.UUID, Reserved]
    any_units: dict[tuple[uuid.UUID, uuid.UUID], int] = field(default_factory=dict)
    any_budget: dict[tuple[uuid.UUID, str], int] = field(default_factory=dict)
    # (campaign, currency) → (amount, its shard count): from all of its shards together.
    spread_budget: dict[tuple[uuid.UUID, str], tuple[int, int]] = field(default_factory=dict)


def _take_from(
    shards: list[list[int]], need: int, rng: random.Random
) -> list[tuple[int, int]] | None:
    """Take `need` from [shard id, left] rows (changed in place): from one row that covers it,
    picked at random, or, when none does, from several taken in random order (so that two
    orders at once seldom pick the same ones); None if all of them together do not cover it."""
    if need <= 0:
        return []
    if sum(left for _, left in shards) < need:
        return None
    covering = [row for row in shards if row[1] >= need]
    if covering:
        row = rng.choice(covering)
        row[1] -= need
        return [(row[0], need)]
    taken = []
    for row in rng.sample(shards, len(shards)):
        amount = min(row[1], need)
        if amount:
            row[1] -= amount
            taken.append((row[0], amount))
            need -= amount
        if not need:
            break
    return taken


def plan(lines: Sequence[tuple[Terms, int, int]], rng: random.Random | None = None) -> Plan:
    """Plan the takes of an order's campaign lines, each (terms, quantity, commission_bps): its
    units from the variant's shards (the caller checked they suffice), and its boost from the
    budget's shards if what is left covers it, else none (withheld).

    What each key needs in all is taken from one shard chosen as the statement runs, if one
    shard had it when read: a flash sale's orders then never wait for each other's shard, nor
    fail on a shard another order took from since it was read. A boost that few shards had
    (the last of a budget: its shards run dry at about the same time, and end in pieces
    smaller than a boost) is taken from all the budget's shards by the statement, on what
    they hold then, queueing behind the other orders doing the same rather than failing when
    the few shards are held; units that need several shards are named here."""
    rng = rng or random.SystemRandom()
    reserved: dict[uuid.UUID, Reserved] = {}
    budgets: dict[tuple[uuid.UUID, str], list[list[int]]] = {}
    unit_needs: dict[tuple[uuid.UUID, uuid.UUID], int] = defaultdict(int)
    unit_shards: dict[tuple[uuid.UUID, uuid.UUID], tuple[tuple[int, int], ...]] = {}
    budget_needs: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    for terms, quantity, commission_bps in lines:
        key = (terms.campaign_id, terms.variant_id)
        unit_needs[key] += quantity
        unit_shards[key] = terms.unit_shards
        if terms.boost_bps == 0:
            reserved[terms.variant_id] = Reserved(0, False)
            continue
        money = (terms.campaign_id, terms.currency)
        shards = budgets.setdefault(money, [list(s) for s in terms.budget_shards])
        boost = boost_of(terms.price_minor * quantity, commission_bps, terms.boost_bps)
        # Whether what is left covers it (the line is withheld if not), on the totals.
        if _take_from(shards, boost, rng) is None:
            reserved[terms.variant_id] = Reserved(0, True)
            continue
        budget_needs[money] += boost
        reserved[terms.variant_id] = Reserved(terms.boost_bps, False)
    out = Plan({}, {}, reserved)
    for key, need in unit_needs.items():
        if any(left >= need for _, left in unit_shards[key]):
            out.any_units[key] = need
            continue
        taken = _take_from([list(s) for s in unit_shards[key]], need, rng)
        if taken is None:
            raise RuntimeError("plan() is given lines whose units are there")
        for shard, n in taken:
            out.units[shard] = out.units.get(shard, 0) + n
    for money, need in budget_needs.items():
        terms = next(t for t, _, _ in lines if (t.campaign_id, t.currency) == money)
        covering = sum(1 for _, left in terms.budget_shards if left >= need)
        if covering >= min(ANY_SHARD_MIN, terms.budget_shard_count):
            out.any_budget[money] = need
        else:
            out.spread_budget[money] = (need, terms.budget_shard_count)
    return out


async def reserve(session: AsyncSession, taken: Plan) -> None:
    """Take the plan's units and boost with the order's one statement, or fail it with
    ConcurrentChange if the shards no longer have them (checkout runs again on fresh reads)."""
    await repository.take(
        session,
        sorted(taken.units.items()),
        sorted(taken.budget.items()),
        [(c, v, n) for (c, v), n in sorted(taken.any_units.items())],
        [(c, cur, n) for (c, cur), n in sorted(taken.any_budget.items())],
        [(c, cur, n, count) for (c, cur), (n, count) in sorted(taken.spread_budget.items())],
    )


# Giving back -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GiveBack:
    campaign_id: uuid.UUID
    variant_id: uuid.UUID
    currency: str
    units: int
    boost_minor: int


def line_boost(unit_price: int, units: int, commission_bps: int, boost_bps: int) -> int:
    """What a campaign line with `units` kept holds of the budget."""
    return boost_of(unit_price * units, commission_bps, boost_bps) if boost_bps else 0


async def give_back(session: AsyncSession, returned: Sequence[GiveBack]) -> dict[uuid.UUID, int]:
    """Units and boost back to their campaigns: units to the allocation while the campaign
    holds it, and otherwise the units per variant for the caller to put back in stock (the
    return value); the boost to the budget, whatever the campaign's state (settlement
    releases what is left)."""
    to_stock: dict[uuid.UUID, int] = defaultdict(int)
    units: dict[tuple[uuid.UUID, uuid.UUID], int] = defaultdict(int)
    budget: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    await session.flush()
    for campaign_id in sorted({r.campaign_id for r in returned}):
        status = await repository.status_for_share(session, campaign_id)
        for r in (r for r in returned if r.campaign_id == campaign_id):
            if r.units:
                if status in HOLDING:
                    units[(campaign_id, r.variant_id)] += r.units
                else:
                    to_stock[r.variant_id] += r.units
            if r.boost_minor:
                budget[(campaign_id, r.currency)] += r.boost_minor
    # All at once, in checkout's lock order (repository.add_back), not line by line: taken in
    # turns at random, shards deadlocked with checkouts taking them.
    await repository.add_back(session, dict(units), dict(budget))
    return dict(to_stock)


async def give_back_orders(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Expired orders' campaign lines: every unit and all the boost they reserved back; the
    units to put back in stock instead (campaigns that ended meanwhile)."""
    rows = await repository.lines_given_back(session, order_ids)
    return await give_back(
        session,
        [
            GiveBack(
                r.campaign_id,
                r.variant_id,
                r.currency,
                r.quantity,
                line_boost(
                    r.unit_price_minor,
                    r.quantity - r.returned_quantity,
                    r.commission_bps,
                    r.boost_bps,
                ),
            )
            for r in rows
        ],
    )


# The clock -------------------------------------------------------------------------------------


async def tick(session: AsyncSession, now: datetime, limit: int = 500) -> list[uuid.UUID]:
    """Move every campaign the clock has passed a time of: scheduled → warm_up → live → ended
    (announcing the start an hour ahead), ended → settled once every campaign order is final;
    note an exhausted budget once; refresh the results of those selling or just ended. Returns
    the campaigns live after it (their leaderboards refresh every few seconds)."""
    live: list[uuid.UUID] = []
    for campaign in await repository.due(session, now, limit):
        await _advance(session, campaign, now)
        if campaign.status is CampaignStatus.live:
            live.append(campaign.id)
    return live


async def _advance(session: AsyncSession, c: Campaign, now: datetime) -> None:
    if c.status is CampaignStatus.scheduled and c.warm_up_at <= now:
        c.status = CampaignStatus.warm_up
        await session.flush()
        await _emit(session, EventType.campaign_warm_up, c)
    if (
        c.status in (CampaignStatus.scheduled, CampaignStatus.warm_up)
        and c.starting_announced_at is None
        and c.starts_at - STARTING_NOTICE <= now < c.starts_at
    ):
        c.starting_announced_at = now
        await session.flush()
        await _emit(session, EventType.campaign_starting, c)
    if c.status in (CampaignStatus.scheduled, CampaignStatus.warm_up) and c.starts_at <= now:
        c.status = CampaignStatus.live
        await session.flush()
        await _emit(session, EventType.campaign_live, c)
    if c.status in (CampaignStatus.live, CampaignStatus.ended) and c.budget_exhausted_at is None:
        left = await repository.budget_left(session, c.id)
        if c.boost_bps and (
            any(v == 0 for v in left.values()) or await repository.any_withheld(session, c.id)
        ):
            c.budget_exhausted_at = now
            await session.flush()
            await _emit(session, EventType.campaign_budget_exhausted, c, budget_left=left)
    if c.status is CampaignStatus.live and c.ends_at <= now:
        await _end(session, c, now, early=False)
    if c.status in (CampaignStatus.live, CampaignStatus.ended):
        await repository.refresh_results(session, c.id, now)
    if c.status is CampaignStatus.ended and not await repository.open_campaign_orders(
        session, c.id
    ):
        left = await repository.budget_left(session, c.id)
        for budget in await repository.budgets_of(session, [c.id]):
            budget.released_minor = left.get(budget.currency, 0)
        c.status = CampaignStatus.settled
        c.settled_at = now
        await session.flush()


async def refresh(session: AsyncSession, campaign_ids: Sequence[uuid.UUID], now: datetime) -> None:
    for campaign_id in campaign_ids:
        await repository.refresh_results(session, campaign_id, now)


async def refresh_live(session: AsyncSession) -> int:
    """Refresh the results of every live campaign (the leaderboard's few-second cadence)."""
    now = utcnow()
    live = await repository.live_ids(session, 500)
    await refresh(session, live, now)
    return len(live)


async def _emit(session: AsyncSession, event: EventType, c: Campaign, **extra: Any) -> None:
    data: dict[str, Any] = {
        "campaign_id": str(c.id),
        "supplier_id": str(c.supplier_id),
        "title": c.title,
        "status": str(c.status),
        "warm_up_at": c.warm_up_at.isoformat(),
        "starts_at": c.starts_at.isoformat(),
        "ends_at": c.ends_at.isoformat(),
    }
    if c.ended_at is not None:
        data["ended_at"] = c.ended_at.isoformat()
        data["ended_early"] = c.ended_early
    data.update(extra)
    await webhooks.emit(session, event, c.supplier_id, data)


# Leaderboard and results -----------------------------------------------------------------------


async def _readable(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    supplier_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
) -> Campaign:
    """The supplier's own campaign, or one the caller's shop signed up to."""
    if supplier_id is not None:
        return await _supplier_campaign(session, supplier_id, campaign_id)
    if account_id is None:
        raise CampaignNotFound()
    shop = await shops.shop_of(session, account_id)
    entry = await repository.shop_entry(session, campaign_id, shop.id)
    if entry is None or entry.joined_at is None:
        raise CampaignNotFound()
    campaign = await repository.one(session, repository.any_campaigns(), campaign_id)
    if campaign is None:
        raise CampaignNotFound()
    return campaign


async def leaderboard(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    page: PageParams,
    *,
    supplier_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
) -> LeaderboardOut:
    """Signed-up shops by campaign GMV, as last refreshed (every few seconds while live)."""
    campaign = await _readable(session, campaign_id, supplier_id, account_id)
    offset = 0
    if page.cursor is not None:
        values = decode_cursor(page.cursor)
        # Our cursors hold one rank offset: anything else is a cursor we never gave out.
        if len(values) != 1 or not isinstance(values[0], int) or values[0] < 0:
            raise InvalidCursor()
        offset = values[0]
    rows = await repository.leaderboard(session, campaign.id, page.limit + 1, offset)
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return LeaderboardOut(
        campaign_id=campaign.id,
        refreshed_at=campaign.results_refreshed_at,
        items=[
            StandingOut(
                rank=offset + i + 1,
                shop_id=r.shop_id,
                shop_name=r.shop_name,
                shop_slug=r.shop_slug,
                currency=r.currency,
                orders=r.orders,
                units=r.units,
                gmv_minor=r.gmv_minor,
                refunds_minor=r.refunds_minor,
                boost_minor=r.boost_minor,
            )
            for i, r in enumerate(rows)
        ],
        next_cursor=encode_cursor([offset + page.limit]) if more else None,
    )


def _sum_into(target: dict[Any, dict[str, int]], key: Any, row: Any) -> None:
    line = target.setdefault(key, defaultdict(int))
    for name in (
        "orders",
        "units",
        "gmv_minor",
        "refunded_units",
        "refunds_minor",
        "boost_minor",
        "unboosted_units",
    ):
        line[name] += getattr(row, name)


async def results(
    session: AsyncSession, supplier_id: uuid.UUID, campaign_id: uuid.UUID
) -> ResultsOut:
    """Per shop and per product: units, GMV, refunds and boost paid, as last refreshed (the
    clock refreshes them until the campaign settles, and once more then)."""
    campaign = await _supplier_campaign(session, supplier_id, campaign_id)
    by_shop: dict[tuple[uuid.UUID, str], dict[str, int]] = {}
    by_product: dict[tuple[uuid.UUID, str], dict[str, int]] = {}
    for row in await repository.results(session, campaign.id):
        _sum_into(by_shop, (row.shop_id, row.currency), row)
        _sum_into(by_product, (row.product_id, row.currency), row)
    (out,) = await _outs(session, [campaign])
    shops_ranked = sorted(by_shop.items(), key=lambda kv: (-kv[1]["gmv_minor"], str(kv[0][0])))
    return ResultsOut(
        campaign_id=campaign.id,
        status=campaign.status,
        refreshed_at=campaign.results_refreshed_at,
        budgets=out.budgets,
        by_shop=[
            ShopResult(shop_id=k[0], currency=k[1], **v) for k, v in shops_ranked[:LEADERBOARD_MAX]
        ],
        by_product=[
            ProductResult(product_id=k[0], currency=k[1], **v)
            for k, v in sorted(
                by_product.items(), key=lambda kv: (-kv[1]["gmv_minor"], str(kv[0][0]))
            )
        ],
    )


# Storefront ------------------------------------------------------------------------------------
# What a shop's product page, shop page and share-link preview show of a campaign the shop
# signed up to: the campaign price (markup included, as checkout charges it) beside the regular
# price, and a countdown. Loaded with the page's other data and cached by the caller; the phase
# (warming up, live, over) is worked out when the page is rendered, from the cached times and
# the request's clock, so a cached read never shows a warm-up after the start or a price after
# `ends_at`. What a cache can hold too long is only what changes without a time: an early end,
# a new sign-up, the units left.


class Phase(enum.StrEnum):
    warm_up = "warm_up"  # the price and a countdown to the start; sells at the regular price
    live = "live"  # sells at the campaign price while the allocation lasts


@dataclass(frozen=True, slots=True)
class ShownVariant:
    variant_id: uuid.UUID
    currency: str
    price_minor: int  # the campaign price in this shop, markup included: what checkout charges
    regular_minor: int  # the shop's regular price now, markup included
    units_left: int  # of the allocation, as last read (0: sold out at the campaign price)


@dataclass(frozen=True, slots=True)
class Showing:
    """A campaign of a product, as the shop's pages show it (read before or during its run)."""

    campaign_id: uuid.UUID
    title: str
    warm_up_at: datetime
    starts_at: datetime
    ends_at: datetime
    variants: tuple[ShownVariant, ...]

    def phase(self, at: datetime) -> Phase | None:
        if self.starts_at <= at < self.ends_at:
            return Phase.live
        if self.warm_up_at <= at < self.starts_at:
            return Phase.warm_up
        return None

    def until(self, at: datetime) -> datetime | None:
        """When what it shows at `at` changes next: warm-up, start or end."""
        return next((t for t in (self.warm_up_at, self.starts_at, self.ends_at) if at < t), None)

    def variant(self, variant_id: uuid.UUID) -> ShownVariant | None:
        return next((v for v in self.variants if v.variant_id == variant_id), None)

    @property
    def cheapest(self) -> ShownVariant:
        """The cheapest variant with units left (else the cheapest): the price a listing shows."""
        pool = [v for v in self.variants if v.units_left > 0] or list(self.variants)
        return min(pool, key=lambda v: v.price_minor)

    @property
    def units_left(self) -> int:
        return sum(v.units_left for v in self.variants)


def _showings(rows: Sequence[repository.ShownRow]) -> dict[uuid.UUID, tuple[Showing, ...]]:
    grouped: dict[tuple[uuid.UUID, uuid.UUID], list[repository.ShownRow]] = {}
    for row in rows:  # in warm-up order
        grouped.setdefault((row.product_id, row.campaign_id), []).append(row)
    out: dict[uuid.UUID, list[Showing]] = defaultdict(list)
    for (product_id, _), group in grouped.items():
        first = group[0]
        out[product_id].append(
            Showing(
                campaign_id=first.campaign_id,
                title=first.title,
                warm_up_at=first.warm_up_at,
                starts_at=first.starts_at,
                ends_at=first.ends_at,
                variants=tuple(
                    ShownVariant(
                        variant_id=r.variant_id,
                        currency=r.currency,
                        price_minor=shop_price(r.price_minor, r.markup_bps, r.ceiling_bps),
                        regular_minor=shop_price(r.regular_minor, r.markup_bps, r.ceiling_bps),
                        units_left=r.units_left,
                    )
                    for r in group
                ),
            )
        )
    return {product_id: tuple(found) for product_id, found in out.items()}


def shown_read(
    shop_slug: str, product_ids: Sequence[uuid.UUID], at: datetime
) -> Read[dict[uuid.UUID, tuple[Showing, ...]]]:
    """By product: the campaigns of these products the shop signed up to that have not ended
    at `at` (warming up, live, or still to come). A read to ask with others; needs a product."""
    read = repository.shown(shop_slug, list(product_ids), at)
    return Read(read.sql, read.params, lambda rows: _showings(read.make(rows)))


async def shown(
    session: AsyncSession, shop_slug: str, product_ids: Sequence[uuid.UUID], at: datetime
) -> dict[uuid.UUID, tuple[Showing, ...]]:
    if not product_ids:
        return {}
    found: dict[uuid.UUID, tuple[Showing, ...]]
    (found,) = await read_together(session, shown_read(shop_slug, product_ids, at))
    return found


def showing_at(showings: Sequence[Showing], at: datetime) -> tuple[Showing, Phase] | None:
    """The campaign a product's page shows at `at` (a live one before one warming up), and in
    which phase; None when none is warming up or live."""
    found = [(s, phase) for s in showings if (phase := s.phase(at)) is not None]
    found.sort(key=lambda sp: (sp[1] is not Phase.live, sp[0].starts_at))
    return found[0] if found else None


def next_change(showings: Sequence[Showing], at: datetime) -> datetime | None:
    """The first time after `at` at which what these campaigns show changes (a cache of the page
    must not outlive it)."""
    times = [t for s in showings if (t := s.until(at)) is not None]
    return min(times, default=None)


def countdown(seconds: float) -> tuple[tuple[int, str], ...]:
    """Time left as at most two parts for people to read, largest first: (2, "d"), (3, "h");
    (2, "h"), (14, "m"); (14, "m"), (5, "s"); under a minute the seconds alone. The storefront's
    script (static/countdown.js) ticks it down by the same rule."""
    left = max(int(seconds), 0)
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return ((days, "d"), (hours, "h"))
    if hours:
        return ((hours, "h"), (minutes, "m"))
    if minutes:
        return ((minutes, "m"), (secs, "s"))
    return ((secs, "s"),)
