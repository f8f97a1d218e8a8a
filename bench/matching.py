"""Offline evaluation of matching (货配人) on a synthetic platform with planted structure.

Usage: .venv/bin/python bench/matching.py [--seed 7] [--shops 400] [--products 2000]
    [--learn-weeks 4] [--keep]

The generator plants what a recommender should find, and hides it: every shop's audience has
hidden category and price-band preferences (Dirichlet draws), every product a hidden quality
(it drives conversion and returns); commission is drawn independently. Week by week each
shopkeeper adopts a few products (mostly ones that suit its audience, some at random); its
buyers open links to what they like and order with a probability that grows with fit and
quality; some units come back. The first `--learn-weeks` weeks are written into a database of
its own (`xiaopu_bench_matching`, migrated with the project's migrations; rebuilt every run)
as the tables checkout and the click flusher leave: orders, supplier orders, lines, clicks,
selections. Then the production job `matching.compute` runs there with the clock at the split
(a local midnight of XIAOPU_TIME_ZONE), and each shop's top 10 is read through the production
read path (matching.service.recommendations). The recommender reads only the database, never
the generator's hidden parameters.

Held out: the week after the split. Truth for a shop: the products it sells for the FIRST time
in that week and did not carry at the split (a product it carried is never recommended, so it
cannot be a hit for anyone). The denominator is fixed: every shop with at least one such first
sale, whether or not either method recommends it anything. A shop's precision@10 is its hits in
the top 10 over 10, recall@10 its hits over its truth; both averaged over those shops. The
popularity baseline, in the same run: the 10 products with the most units sold on the platform
in the learning weeks, on sale and in stock, that the shop does not carry. For scale it also
prints 10 products drawn at random from those on sale and in stock that the shop lacks.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import ATTRIBUTION, JWT, server_url

from xiaopu import devdb
from xiaopu.config import Environment, Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.kit.clock import clock
from xiaopu.kit.pagination import PageParams
from xiaopu.matching import jobs as matching_jobs
from xiaopu.matching import service as matching
from xiaopu.migrate import upgrade
from xiaopu.queue import JobContext

DATABASE = "xiaopu_bench_matching"
CATEGORIES = [
    "food.tea",
    "food.snacks",
    "food.fruit",
    "beauty.skincare",
    "beauty.makeup",
    "apparel.women",
    "baby.toys",
    "home.kitchen",
    "digital.phone-accessories",
    "health.supplements",
]
# (lowest, first above) price of each band in minor units, and how many products fall in it.
BANDS = [(990, 3_000), (3_000, 10_000), (10_000, 30_000), (30_000, 100_000), (100_000, 300_000)]
BAND_WEIGHTS = [0.3, 0.3, 0.2, 0.15, 0.05]
SUPPLIERS = 20
FIRST_SELECTION = 10
ADOPTED_PER_WEEK = 3
EXPLORE = 0.2  # share of adoptions a shopkeeper picks at random
SHOP_LINK_SHARE = 0.1  # visits to the shop's own link, not to a product
BASE_CONVERSION = 0.15
RETURN_BASE = 0.25
TOP = 10


@dataclass
class Product:
    n: int
    id: uuid.UUID
    supplier: int
    category: int
    band: int
    price: int
    commission_bps: int
    quality: float  # hidden
    stock: int
    status: str


@dataclass
class Shop:
    n: int
    id: uuid.UUID
    owner: uuid.UUID
    category_pref: list[float]  # hidden
    band_pref: list[float]  # hidden
    audience: float  # hidden: visitors a day
    carried: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # buyers' interest in each carried one
    sold: set[int] = field(default_factory=set)


@dataclass
class Sale:
    shop: int
    product: int
    quantity: int
    returned: int
    at: datetime


@dataclass
class Click:
    shop: int
    product: int | None
    visitor: str
    at: datetime


def _id(kind: int, n: int) -> uuid.UUID:
    return uuid.UUID(f"{kind:08x}-0000-4000-8000-{n:012x}")


def _dirichlet(rng: random.Random, alpha: float, k: int) -> list[float]:
    draws = [rng.gammavariate(alpha, 1.0) for _ in range(k)]
    total = sum(draws) or 1.0
    return [d / total for d in draws]


class Platform:
    """The generator. Only it reads the hidden fields; run() and the bench's scoring never do."""

    def __init__(self, seed: int, shops: int, products: int, split: datetime) -> None:
        self.rng = random.Random(seed)
        self.split = split
        rng = self.rng
        self.products = []
        for n in range(products):
            band = rng.choices(range(len(BANDS)), BAND_WEIGHTS)[0]
            low, high = BANDS[band]
            status = "active"
            roll = rng.random()
            if roll < 0.02:
                status = "archived"
            self.products.append(
                Product(
                    n=n,
                    id=_id(4, n + 1),
                    supplier=n % SUPPLIERS,
                    category=rng.randrange(len(CATEGORIES)),
                    band=band,
                    price=rng.randrange(low, high, 10),
                    commission_bps=rng.randrange(500, 3001, 100),
                    quality=rng.betavariate(2, 3),
                    stock=0 if 0.02 <= roll < 0.04 else 1000,
                    status=status,
                )
            )
        self.suspended_supplier = SUPPLIERS - 1
        self.shops = [
            Shop(
                n=n,
                id=_id(3, n + 1),
                owner=_id(1, n + 1),
                category_pref=_dirichlet(rng, 0.3, len(CATEGORIES)),
                band_pref=_dirichlet(rng, 0.6, len(BANDS)),
                audience=rng.lognormvariate(math.log(60), 0.6),
            )
            for n in range(shops)
        ]
        self.sales: list[Sale] = []
        self.clicks: list[Click] = []
        self.held_out: list[Sale] = []
        self.carried_at_split: dict[int, set[int]] = {}

    def _sellable(self, p: Product) -> bool:
        return p.status == "active" and p.stock > 0 and p.supplier != self.suspended_supplier

    def _fit(self, shop: Shop, p: Product) -> float:
        return shop.category_pref[p.category] * shop.band_pref[p.band]

    def _adopt(self, shop: Shop, count: int) -> None:
        pool = [p for p in self.products if self._sellable(p) and p.n not in shop.carried]
        for _ in range(count):
            if self.rng.random() < EXPLORE:
                chosen = self.rng.choice(pool)
            else:
                weights = [self._fit(shop, p) * (0.5 + p.quality) for p in pool]
                chosen = self.rng.choices(pool, weights)[0]
            pool.remove(chosen)
            shop.carried.append(chosen.n)
            # Buyers open what suits them more often, but everything a little.
            shop.weights.append(0.2 + self._fit(shop, chosen) / max(self._best_fit(shop), 1e-9))

    def _best_fit(self, shop: Shop) -> float:
        return max(shop.category_pref) * max(shop.band_pref)

    def _day(self, shop: Shop, day: int, out_sales: list[Sale], out_clicks: list[Click]) -> None:
        rng = self.rng
        start = self.split + timedelta(days=day)
        visitors = self._poisson(shop.audience)
        best = self._best_fit(shop)
        for v in range(visitors):
            at = start + timedelta(seconds=rng.randrange(86_400))
            visitor = f"s{shop.n}d{day}v{v}"
            if rng.random() < SHOP_LINK_SHARE or not shop.carried:
                out_clicks.append(Click(shop.n, None, visitor, at))
                continue
            pn = rng.choices(shop.carried, shop.weights)[0]
            p = self.products[pn]
            out_clicks.append(Click(shop.n, pn, visitor, at))
            if not self._sellable(p):
                continue
            fit = self._fit(shop, p) / best
            if rng.random() < BASE_CONVERSION * p.quality * (0.3 + fit):
                quantity = 1 if rng.random() < 0.8 else 2
                returned = sum(
                    rng.random() < RETURN_BASE * (1 - p.quality) for _ in range(quantity)
                )
                out_sales.append(Sale(shop.n, pn, quantity, returned, at))

    def _poisson(self, mean: float) -> int:
        # Knuth's method is slow for large means; a rounded normal is close enough there.
        if mean > 30:
            return max(0, round(self.rng.gauss(mean, math.sqrt(mean))))
        limit, k, product = math.exp(-mean), 0, self.rng.random()
        while product > limit:
            k += 1
            product *= self.rng.random()
        return k

    def run(self, learn_weeks: int) -> None:
        for shop in self.shops:
            self._adopt(shop, FIRST_SELECTION)
        for week in range(learn_weeks + 1):
            held_out = week == learn_weeks
            if week > 0:
                if held_out:
                    self.carried_at_split = {s.n: set(s.carried) for s in self.shops}
                for shop in self.shops:
                    self._adopt(shop, ADOPTED_PER_WEEK)
            for d in range(7):
                day = (week - learn_weeks) * 7 + d  # negative before the split
                for shop in self.shops:
                    sales: list[Sale] = []
                    self._day(shop, day, sales, [] if held_out else self.clicks)
                    (self.held_out if held_out else self.sales).extend(sales)

    def truth(self) -> dict[int, set[int]]:
        """Per shop: products first sold in the held-out week that it did not carry at the
        split."""
        before: dict[int, set[int]] = defaultdict(set)
        for sale in self.sales:
            before[sale.shop].add(sale.product)
        found: dict[int, set[int]] = defaultdict(set)
        for sale in self.held_out:
            first = sale.product not in before[sale.shop]
            if first and sale.product not in self.carried_at_split[sale.shop]:
                found[sale.shop].add(sale.product)
        return dict(found)

    def first_sales_of_carried(self) -> int:
        before: dict[int, set[int]] = defaultdict(set)
        for sale in self.sales:
            before[sale.shop].add(sale.product)
        return len(
            {
                (s.shop, s.product)
                for s in self.held_out
                if s.product not in before[s.shop] and s.product in self.carried_at_split[s.shop]
            }
        )


async def _write(conn: asyncpg.Connection, platform: Platform) -> None:
    """The learning weeks, as the app's own tables hold them."""
    t0 = platform.split - timedelta(days=400)
    accounts = [
        (s.owner, f"m{s.n}@bench.example", "not-a-hash", f"keeper {s.n}", "active", t0, t0)
        for s in platform.shops
    ]
    await conn.copy_records_to_table(
        "accounts",
        records=accounts,
        columns=[
            "id",
            "email",
            "password_hash",
            "display_name",
            "status",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "suppliers",
        records=[
            (
                _id(2, n + 1),
                f"Supplier {n}",
                "suspended" if n == platform.suspended_supplier else "active",
                0,
                "CNY",
                t0,
                t0,
            )
            for n in range(SUPPLIERS)
        ],
        columns=[
            "id",
            "name",
            "status",
            "shipping_fee_minor",
            "shipping_currency",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "products",
        records=[
            (
                p.id,
                _id(2, p.supplier + 1),
                f"P{p.n}",
                f"商品 {p.n}",
                "",
                [f"https://img.bench.example/{p.n}.jpg"],
                CATEGORIES[p.category],
                None,
                7,
                p.commission_bps,
                2000,
                p.status,
                f"商 品 商品 {p.n}",
                p.commission_bps,
                p.price,
                t0,
                t0,
            )
            for p in platform.products
        ],
        columns=[
            "id",
            "supplier_id",
            "ref",
            "title",
            "description",
            "image_urls",
            "category_id",
            "brand",
            "return_window_days",
            "commission_bps",
            "markup_ceiling_bps",
            "status",
            "search_terms",
            "max_commission_bps",
            "min_price_minor",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "variants",
        records=[
            (
                _id(5, p.n + 1),
                p.id,
                _id(2, p.supplier + 1),
                f"S{p.n}",
                "{}",
                p.price,
                "CNY",
                p.stock,
                None,
                None,
                0,
                t0,
                t0,
            )
            for p in platform.products
        ],
        columns=[
            "id",
            "product_id",
            "supplier_id",
            "sku",
            "options",
            "price_minor",
            "currency",
            "stock",
            "weight_grams",
            "commission_bps",
            "low_stock_threshold",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "shops",
        records=[
            (s.id, s.owner, f"Shop {s.n}", f"shop-{s.n}", "standard", 0, t0, t0)
            for s in platform.shops
        ],
        columns=[
            "id",
            "owner_account_id",
            "name",
            "slug",
            "level",
            "completed_sales",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "shop_products",
        records=[
            (uuid.uuid4(), _id(3, shop + 1), platform.products[pn].id, None, 0, t0)
            for shop, carried in platform.carried_at_split.items()
            for pn in sorted(carried)
        ],
        columns=["id", "shop_id", "product_id", "blurb", "markup_bps", "created_at"],
    )
    links = {}
    for c in platform.clicks:
        links.setdefault((c.shop, c.product), uuid.uuid4())
    await conn.copy_records_to_table(
        "clicks",
        records=[
            (
                uuid.uuid4(),
                c.at,
                links[(c.shop, c.product)],
                _id(3, c.shop + 1),
                None if c.product is None else platform.products[c.product].id,
                c.visitor,
                None,
                "mobile",
                False,
            )
            for c in platform.clicks
        ],
        columns=[
            "id",
            "created_at",
            "link_id",
            "shop_id",
            "product_id",
            "visitor_id",
            "referrer_host",
            "agent_class",
            "is_repeat",
        ],
    )
    orders, parts, lines = [], [], []
    address = json.dumps({"recipient": "买家", "city": "昆明市"}, ensure_ascii=False)
    for n, sale in enumerate(platform.sales):
        p = platform.products[sale.product]
        order_id, part_id = _id(6, n + 1), _id(7, n + 1)
        shop_id = _id(3, sale.shop + 1)
        base = p.price * sale.quantity
        orders.append(
            (
                order_id,
                shop_id,
                "+8613800138000",
                address,
                "paid",
                "CNY",
                base,
                0,
                base,
                0,
                "none",
                False,
                sale.at,
                sale.at,
                hashlib.sha256(order_id.bytes).digest(),
                sale.at,
                sale.at,
            )
        )
        parts.append(
            (
                part_id,
                order_id,
                _id(2, p.supplier + 1),
                shop_id,
                "delivered",
                "CNY",
                base,
                0,
                base,
                0,
                False,
                sale.at,
                sale.at,
                sale.at,
            )
        )
        lines.append(
            (
                _id(8, n + 1),
                order_id,
                part_id,
                p.id,
                _id(5, p.n + 1),
                f"S{p.n}",
                f"商品 {p.n}",
                "{}",
                sale.quantity,
                "CNY",
                p.price,
                0,
                base,
                0,
                p.commission_bps,
                500,
                7,
                sale.returned,
                sale.at,
            )
        )
    await conn.copy_records_to_table(
        "orders",
        records=orders,
        columns=[
            "id",
            "shop_id",
            "buyer_phone",
            "address",
            "status",
            "currency",
            "items_minor",
            "shipping_minor",
            "total_minor",
            "refunded_minor",
            "attribution",
            "self_purchase",
            "expires_at",
            "paid_at",
            "access_token_hash",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "supplier_orders",
        records=parts,
        columns=[
            "id",
            "order_id",
            "supplier_id",
            "shop_id",
            "status",
            "currency",
            "items_minor",
            "shipping_minor",
            "total_minor",
            "refunded_minor",
            "shipping_refunded",
            "paid_at",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "order_lines",
        records=lines,
        columns=[
            "id",
            "order_id",
            "supplier_order_id",
            "product_id",
            "variant_id",
            "sku",
            "title",
            "options",
            "quantity",
            "currency",
            "unit_price_minor",
            "unit_markup_minor",
            "base_minor",
            "markup_minor",
            "commission_bps",
            "platform_fee_bps",
            "return_window_days",
            "returned_quantity",
            "created_at",
        ],
    )
    await conn.execute("ANALYZE")


async def _popular(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[uuid.UUID]:
    """Products on sale and in stock, most units sold on the platform in the window first."""
    rows = await conn.fetch(
        """SELECT ol.product_id, sum(ol.quantity) AS units
        FROM supplier_orders so JOIN order_lines ol ON ol.supplier_order_id = so.id
        JOIN products p ON p.id = ol.product_id AND p.status = 'active'
        JOIN suppliers s ON s.id = p.supplier_id AND s.status = 'active'
        WHERE so.paid_at >= $1 AND so.paid_at < $2
          AND EXISTS (SELECT 1 FROM variants v WHERE v.product_id = p.id AND v.stock > 0)
        GROUP BY ol.product_id ORDER BY units DESC, ol.product_id""",
        start,
        end,
    )
    return [r["product_id"] for r in rows]


def _score(ranked: dict[int, list[int]], truth: dict[int, set[int]]) -> tuple[float, float]:
    precision = recall = 0.0
    for shop, wanted in truth.items():
        hits = len(set(ranked.get(shop, [])[:TOP]) & wanted)
        precision += hits / TOP
        recall += hits / len(wanted)
    return precision / len(truth), recall / len(truth)


async def main_async(args: argparse.Namespace, server: str) -> None:
    settings = Settings(
        env=Environment.test,
        database_url="postgresql://unused",
        jwt_secret=JWT,
        attribution_secret=ATTRIBUTION,
        log_level="WARNING",
    )
    zone = ZoneInfo(settings.time_zone)
    today = datetime.now(zone).date()
    split = datetime.combine(today, datetime.min.time(), zone).astimezone(UTC)
    started = time.perf_counter()
    platform = Platform(args.seed, args.shops, args.products, split)
    platform.run(args.learn_weeks)
    truth = platform.truth()
    print(
        f"generated in {time.perf_counter() - started:.1f} s: {args.shops} shops, "
        f"{args.products} products, {len(platform.clicks)} clicks and {len(platform.sales)} "
        f"orders in {args.learn_weeks} weeks; held-out week: {len(platform.held_out)} orders, "
        f"{sum(len(t) for t in truth.values())} first sales of products not carried at the "
        f"split in {len(truth)} shops (and {platform.first_sales_of_carried()} first sales of "
        f"products carried already, which no method can recommend)",
        flush=True,
    )

    url = devdb.with_database(server, DATABASE)
    await devdb.create_database(server, DATABASE, replace=True)
    await asyncio.to_thread(upgrade, url, quiet=True)
    conn = await asyncpg.connect(url)
    started = time.perf_counter()
    try:
        await _write(conn, platform)
    finally:
        await conn.close()
    print(f"written to {DATABASE} in {time.perf_counter() - started:.1f} s", flush=True)

    settings = settings.model_copy(update={"database_url": url})
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    clock.freeze(split)
    try:
        started = time.perf_counter()
        async with httpx.AsyncClient() as http, sessionmaker() as session, session.begin():
            await matching_jobs.compute(session, JobContext(settings=settings, http=http), b"")
        print(f"matching.compute ran in {time.perf_counter() - started:.1f} s", flush=True)
        by_product = {p.id: p.n for p in platform.products}
        ours: dict[int, list[int]] = {}
        async with sessionmaker() as session:
            for shop in platform.shops:
                page = await matching.recommendations(
                    session, shop.owner, PageParams(limit=TOP, cursor=None)
                )
                ours[shop.n] = [by_product[i.product_id] for i in page.items]
        conn = await asyncpg.connect(url)
        try:
            window_start = split - timedelta(days=7 * args.learn_weeks)
            popular = [by_product[p] for p in await _popular(conn, window_start, split)]
        finally:
            await conn.close()
    finally:
        clock.reset()
        await engine.dispose()
    baseline = {
        s.n: [p for p in popular if p not in platform.carried_at_split[s.n]][:TOP]
        for s in platform.shops
    }
    # For scale: products drawn at random from those on sale and in stock the shop lacks.
    drawn = random.Random(args.seed + 1)
    on_sale = [p.n for p in platform.products if platform._sellable(p)]
    chance = {
        s.n: drawn.sample([p for p in on_sale if p not in platform.carried_at_split[s.n]], TOP)
        for s in platform.shops
    }
    p_ours, r_ours = _score(ours, truth)
    p_rand, r_rand = _score(chance, truth)
    p_base, r_base = _score(baseline, truth)
    print(f"shops with a held-out first sale (the denominator): {len(truth)}")
    print(f"recommender  precision@10={p_ours:.4f} recall@10={r_ours:.4f}")
    print(f"popularity   precision@10={p_base:.4f} recall@10={r_base:.4f}")
    print(f"random       precision@10={p_rand:.4f} recall@10={r_rand:.4f}")
    ratio = p_ours / p_base if p_base else float("inf")
    print(f"precision@10 ratio={ratio:.2f} (target >= 2)")
    if not args.keep:
        await devdb.drop_database(server, DATABASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shops", type=int, default=400)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--learn-weeks", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    asyncio.run(main_async(parser.parse_args(), server_url()))


if __name__ == "__main__":
    main()
