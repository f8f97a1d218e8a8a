"""Benchmark checkout (POST /v1/orders) on one worker against pgbench's TPC-B on the same machine.

Usage: .venv/bin/python bench/checkout.py [--seconds 10] [--connections 16] [--rounds 3]
Needs wrk and pgbench (Debian packages) and a PostgreSQL: the one in XIAOPU_BENCH_DATABASE_URL,
else 127.0.0.1:5432, else an embedded one. Checkout and TPC-B run in alternating rounds, each
after a CHECKPOINT (so that neither starts with fewer full-page writes ahead of it than the
other); prints each round's orders/s, p50, p99, TPC-B tps and ratio, and judges by the median
ratio (target >= 0.25). Checks that every order answered 201 is stored, with its stock taken.

--mode flash (64 connections unless --connections): every order on one variant of a live
campaign (20,000 units, a budget that runs out part-way; a new campaign each round) against the
spread-out checkout, in alternating rounds; prints orders/s, p50, p99 and flash ÷ spread, judges
by the median ratio (target >= 0.5), and checks allocation, budget and answered orders
(bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (
    ATTRIBUTION,
    JWT,
    free_port,
    need,
    parse_wrk,
    serve,
    server_url,
    wait_ready,
    wrk,
)

from xiaopu import devdb
from xiaopu.campaigns import service as campaigns
from xiaopu.campaigns.schemas import BudgetIn, CampaignIn, ItemIn
from xiaopu.catalogue import service as catalogue
from xiaopu.catalogue.schemas import BulkUpsert
from xiaopu.config import Environment, Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.kit.clock import clock, utcnow
from xiaopu.migrate import upgrade
from xiaopu.models import (
    Account,
    Campaign,
    CampaignStatus,
    Order,
    Supplier,
    SupplierStatus,
    Variant,
)
from xiaopu.shops import service as shops
from xiaopu.shops.schemas import SelectionAdd, ShopCreate

DB = "xiaopu_bench_checkout"
TPCB_DB = "xiaopu_bench_tpcb"
PRODUCTS = 200
STOCK = 1_000_000_000
FLASH_SKU = "SFLASH"


def _settings(url: str) -> Settings:
    return Settings(
        env=Environment.test, database_url=url, jwt_secret=JWT, attribution_secret=ATTRIBUTION
    )


@dataclass(frozen=True, slots=True)
class Seeded:
    slug: str
    variants: list[str]  # the spread-out checkout's
    supplier_id: uuid.UUID
    account_id: uuid.UUID  # the shop's owner
    flash_variant: uuid.UUID | None  # --mode flash: the campaign's variant, not in `variants`


async def _seed(url: str, *, flash: bool = False) -> Seeded:
    """A shop carrying many products, each with stock that will not run out (and with `flash`
    one more, for the campaign)."""
    engine = create_engine(_settings(url))
    async with create_sessionmaker(engine)() as session, session.begin():
        account = Account(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
        supplier = Supplier(name="Bench Farm", status=SupplierStatus.active)
        session.add_all([account, supplier])
        await session.flush()
        products = [
            {
                "ref": f"P{i}",
                "title": f"云南普洱茶 {i}",
                "category_id": "food.tea",
                "commission_bps": 1500,
                "markup_ceiling_bps": 1000,
                "status": "active",
                "image_urls": ["https://img.example.com/p.jpg"],
                "variants": [
                    {"sku": f"S{i}", "price_minor": 9900, "currency": "CNY", "stock": STOCK}
                ],
            }
            for i in range(PRODUCTS)
        ]
        if flash:
            products.append(
                {
                    "ref": "FLASH",
                    "title": "云南普洱茶 超级品牌团",
                    "category_id": "food.tea",
                    "commission_bps": 1500,
                    "markup_ceiling_bps": 1000,
                    "status": "active",
                    "image_urls": ["https://img.example.com/p.jpg"],
                    "variants": [
                        {"sku": FLASH_SKU, "price_minor": 9900, "currency": "CNY", "stock": STOCK}
                    ],
                }
            )
        await catalogue.bulk_upsert(session, supplier.id, BulkUpsert(products=products))
        settings = _settings(url)
        shop = await shops.open_shop(session, settings, account.id, ShopCreate())
        for _ in range(settings.standard_shop_after_sales):  # a standard shop: no product limit
            await shops.record_completed_sale(session, settings, shop.id)
        for product in await catalogue.supplier_product_rows(session, supplier.id):
            await shops.add_product(
                session, settings, account.id, SelectionAdd(product_id=product.id, markup_bps=500)
            )
        rows = (
            await session.execute(
                select(Variant.id, Variant.sku).where(Variant.supplier_id == supplier.id)
            )
        ).all()
    await engine.dispose()
    return Seeded(
        shop.slug,
        [str(v) for v, sku in rows if sku != FLASH_SKU],
        supplier.id,
        account.id,
        next((v for v, sku in rows if sku == FLASH_SKU), None),
    )


async def _stored(url: str) -> tuple[int, int]:
    """(orders stored, units taken from stock)."""
    engine = create_engine(_settings(url))
    async with create_sessionmaker(engine)() as session:
        orders = await session.scalar(select(func.count()).select_from(Order))
        left = await session.scalar(select(func.sum(Variant.stock)))
    await engine.dispose()
    return int(orders or 0), PRODUCTS * STOCK - int(left or 0)


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _tpcb_init(server: str) -> str:
    """pgbench's TPC-B-like tables on their own database (scale 10); its libpq URL."""
    asyncio.run(devdb.create_database(server, TPCB_DB, replace=True))
    url = _libpq(devdb.with_database(server, TPCB_DB))
    subprocess.run(["pgbench", "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    return url


def _tpcb(url: str, seconds: int, clients: int) -> float:
    """pgbench's built-in TPC-B-like script: its tps."""
    out = subprocess.run(
        ["pgbench", "-b", "tpcb-like", "-c", str(clients), "-j", "2", "-T", str(seconds), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"pgbench printed no tps:\n{out}")
    return float(match.group(1))


def _checkpoint(server: str) -> None:
    subprocess.run(["psql", "-q", "-c", "CHECKPOINT", _libpq(server)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, help="default 16, or 64 with --mode flash")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--mode",
        choices=["tpcb", "flash"],
        default="tpcb",
        help="tpcb: checkout vs pgbench's TPC-B; flash: every order on one campaign's variant vs "
        "the spread-out checkout",
    )
    parser.add_argument(
        "--budget-orders",
        type=int,
        help="--mode flash: the orders a round's boost budget covers (default: half of what the "
        "warm-up's rate would place in a round)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        help="--mode flash: the campaigns' shard count (default: the campaign_shards setting)",
    )
    parser.add_argument(
        "--waits",
        action="store_true",
        help="--mode flash: sample pg_stat_activity's wait events during the rounds",
    )
    args = parser.parse_args()
    need("wrk", "wrk")
    if args.mode == "flash":
        flash_main(args)
        return
    args.connections = args.connections or 16
    need("pgbench", "postgresql-client")

    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    seeded = asyncio.run(_seed(url))
    slug, variants = seeded.slug, seeded.variants
    # Planner statistics, as a database in service has them (pgbench -i makes TPC-B's own).
    subprocess.run(["psql", "-q", "-c", "ANALYZE", _libpq(url)], check=True)
    tpcb_url = _tpcb_init(server)
    data = Path(tempfile.mkstemp(suffix=".txt")[1])
    data.write_text("\n".join([slug, *variants]) + "\n")  # line 1: the shop; then variants
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": url,
        "XIAOPU_JWT_SECRET": JWT,
        "XIAOPU_ATTRIBUTION_SECRET": ATTRIBUTION,
        "XIAOPU_LOG_LEVEL": "WARNING",
        "XIAOPU_BENCH_CHECKOUT": str(data),
    }
    os.environ["XIAOPU_BENCH_CHECKOUT"] = str(data)
    script = Path(__file__).with_name("checkout.lua")
    port = free_port()
    app = serve([sys.executable, "-m", "xiaopu.cli", "serve", "--port", str(port)], env)
    rounds: list[tuple[dict[str, float], float]] = []
    try:
        wait_ready(port, "/healthz")
        warm = wrk(port, 2, args.connections, script, "/v1/orders")
        answered = int(warm["requests"])
        bad = int(warm["bad"])
        for _ in range(args.rounds):
            _checkpoint(server)
            result = wrk(port, args.seconds, args.connections, script, "/v1/orders")
            _checkpoint(server)
            rounds.append((result, _tpcb(tpcb_url, args.seconds, args.connections)))
            answered += int(result["requests"])
            bad += int(result["bad"])
    finally:
        app.send_signal(signal.SIGINT)
        app.wait(timeout=60)
        asyncio.run(devdb.drop_database(server, TPCB_DB))
    orders, units = asyncio.run(_stored(url))

    print(
        f"\nPOST /v1/orders (guest, 1 line, Idempotency-Key) vs pgbench TPC-B: {args.rounds} "
        f"alternating rounds of {args.seconds}s, {args.connections} connections, 1 worker, "
        "load + server + PostgreSQL on this machine"
    )
    print(f"{'round':8}{'orders/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'TPC-B tps':>12}{'ratio':>8}")
    ratios = []
    for i, (result, tps) in enumerate(rounds, 1):
        ratios.append(result["rps"] / tps)
        print(
            f"{i:<8}{result['rps']:>10.0f}{result['p50']:>10.2f}{result['p99']:>10.2f}"
            f"{tps:>12.0f}{ratios[-1]:>8.2f}"
        )
    print(f"median ratio orders/s ÷ TPC-B tps: {statistics.median(ratios):.2f} (target >= 0.25)")
    print(f"non-2xx answers: {bad}")
    print(f"orders answered {answered}, stored {orders}, units taken {units}")
    # Requests still in flight when wrk's clock stopped were answered but not counted by wrk.
    if bad or not 0 <= orders - answered <= (args.rounds + 1) * args.connections:
        sys.exit("order accounting mismatch")
    if units != orders:
        sys.exit("stock accounting mismatch")
    if os.environ.get("XIAOPU_BENCH_KEEP"):
        print(f"kept database {DB}; its shop and variants are listed in {data}")
    else:
        asyncio.run(devdb.drop_database(server, DB))
        data.unlink()


# --mode flash ----------------------------------------------------------------------------------
#
# A campaign's first second: every buyer on one variant, one allocation and one budget. Flash
# rounds order 1 unit each of the campaign's variant in a shop signed up to it; spread rounds
# are the checkout above (one line each over PRODUCTS variants). They alternate, each after a
# CHECKPOINT, and every flash round starts on a campaign of its own (the previous one ended,
# its unsold units back in stock): FLASH_UNITS units and a fresh budget that runs out part-way.

FLASH_UNITS = 20_000
FLASH_PRICE = 7_900
FLASH_BOOST_BPS = 500
FLASH_TARGET = 0.5


def _flash_boost() -> int:
    """What one order of one unit reserves of the budget (the product's commission is 15%)."""
    return campaigns.line_boost(FLASH_PRICE, 1, 1500, FLASH_BOOST_BPS)


async def _new_campaign(
    url: str, seeded: Seeded, budget_minor: int, previous: uuid.UUID | None, shards: int | None
) -> uuid.UUID:
    """End the previous campaign (its unsold units go back to stock) and make a new one through
    the services, live now: created and scheduled with the clock a few minutes back (schedule
    sets the units aside from stock), the shop signed up, then the clock's job run now."""
    settings = _settings(url)
    if shards is not None:
        settings = settings.model_copy(update={"campaign_shards": shards})
    engine = create_engine(settings)
    assert seeded.flash_variant is not None
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            if previous is not None:
                await campaigns.end(session, seeded.supplier_id, previous)
            real = datetime.now(UTC)
            clock.freeze(real - timedelta(minutes=5))
            try:
                made = await campaigns.create(
                    session,
                    seeded.supplier_id,
                    CampaignIn(
                        title="云南春茶超级品牌团",
                        boost_bps=FLASH_BOOST_BPS,
                        budgets=[BudgetIn(currency="CNY", amount_minor=budget_minor)],
                        warm_up_at=real - timedelta(minutes=4),
                        starts_at=real - timedelta(minutes=4),
                        ends_at=real + timedelta(days=1),
                        items=[
                            ItemIn(
                                variant_id=seeded.flash_variant,
                                price_minor=FLASH_PRICE,
                                allocated_units=FLASH_UNITS,
                            )
                        ],
                    ),
                )
                await campaigns.schedule(session, settings, seeded.supplier_id, made.id)
                await campaigns.join(session, seeded.account_id, made.id)
            finally:
                clock.reset()
            await campaigns.tick(session, utcnow())
            status = await session.scalar(select(Campaign.status).where(Campaign.id == made.id))
            if status is not CampaignStatus.live:
                raise RuntimeError(f"the bench's campaign is {status}, not live")
    finally:
        await engine.dispose()
    return made.id


@dataclass(frozen=True, slots=True)
class CampaignState:
    allocated: int
    units_left: int
    sold: int  # units of order lines at the campaign's terms
    budget: int
    budget_left: int
    line_boosts: int  # Σ of what each line reserved, recomputed from the line
    boosted: int  # lines with a boost
    withheld: int  # lines sold at the campaign price without one (the budget had run out)
    orders: int

    @property
    def taken(self) -> int:
        return self.allocated - self.units_left

    @property
    def reserved(self) -> int:
        return self.budget - self.budget_left

    def problems(self) -> list[str]:
        found = []
        if self.sold != self.taken:
            found.append(f"units sold {self.sold} != allocation taken {self.taken}")
        if self.taken > self.allocated:
            found.append(f"allocation taken {self.taken} > allocated {self.allocated}")
        if self.reserved > self.budget:
            found.append(f"boost reserved {self.reserved} > budget {self.budget}")
        if self.reserved != self.line_boosts:
            found.append(f"boost reserved {self.reserved} != Σ line boosts {self.line_boosts}")
        return found


async def _campaign_state(url: str, campaign_id: uuid.UUID) -> CampaignState:
    engine = create_engine(_settings(url))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            # One snapshot for all of it (REPEATABLE READ): shards and lines agree at one moment.
            await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            c = {"c": campaign_id}
            allocated = await session.scalar(
                text("SELECT sum(allocated_units) FROM campaign_items WHERE campaign_id = :c"), c
            )
            left = await session.scalar(
                text("SELECT sum(units_left) FROM campaign_unit_shards WHERE campaign_id = :c"), c
            )
            budget = await session.scalar(
                text("SELECT sum(budget_minor) FROM campaign_budgets WHERE campaign_id = :c"), c
            )
            budget_left = await session.scalar(
                text("SELECT sum(left_minor) FROM campaign_budget_shards WHERE campaign_id = :c"),
                c,
            )
            lines = (
                await session.execute(
                    text(
                        "SELECT order_id, quantity, unit_price_minor, commission_bps, boost_bps, "
                        "boost_withheld FROM order_lines WHERE campaign_id = :c"
                    ),
                    c,
                )
            ).all()
    finally:
        await engine.dispose()
    return CampaignState(
        allocated=int(allocated or 0),
        units_left=int(left or 0),
        sold=sum(line.quantity for line in lines),
        budget=int(budget or 0),
        budget_left=int(budget_left or 0),
        line_boosts=sum(
            campaigns.line_boost(
                line.unit_price_minor, line.quantity, line.commission_bps, line.boost_bps
            )
            for line in lines
        ),
        boosted=sum(1 for line in lines if line.boost_bps),
        withheld=sum(1 for line in lines if line.boost_withheld),
        orders=len({line.order_id for line in lines}),
    )


async def _end_campaign(url: str, seeded: Seeded, campaign_id: uuid.UUID) -> None:
    engine = create_engine(_settings(url))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await campaigns.end(session, seeded.supplier_id, campaign_id)
    finally:
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class Totals:
    orders: int
    found: int  # of the ids answered 201, those stored
    spread_taken: int  # units taken from the spread variants' stock
    spread_sold: int  # units of order lines on them
    flash_taken: int  # units gone from the flash variant's stock (every campaign ended)
    flash_sold: int  # units of order lines on it, at campaign terms or not


async def _totals(url: str, seeded: Seeded, ids: list[uuid.UUID]) -> Totals:
    engine = create_engine(_settings(url))
    flash = seeded.flash_variant
    assert flash is not None
    try:
        async with create_sessionmaker(engine)() as session:
            orders = await session.scalar(select(func.count()).select_from(Order))
            found = await session.scalar(
                text("SELECT count(*) FROM orders WHERE id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": ids},
            )
            stock = dict(
                (
                    await session.execute(
                        select(Variant.id, Variant.stock).where(
                            Variant.supplier_id == seeded.supplier_id
                        )
                    )
                ).all()
            )
            sold: dict[uuid.UUID, int] = dict(
                (
                    await session.execute(
                        text(
                            "SELECT variant_id, sum(quantity) FROM order_lines GROUP BY variant_id"
                        )
                    )
                ).all()
            )
    finally:
        await engine.dispose()
    return Totals(
        orders=int(orders or 0),
        found=int(found or 0),
        spread_taken=sum(STOCK - int(n) for v, n in stock.items() if v != flash),
        spread_sold=sum(int(n) for v, n in sold.items() if v != flash),
        flash_taken=STOCK - stock[flash],
        flash_sold=int(sold.get(flash, 0)),
    )


def _wrk_tally(port: int, seconds: int, connections: int) -> tuple[dict[str, float], Counter[int]]:
    """A round of flash.lua: wrk's figures, and its answers by status."""
    script = Path(__file__).with_name("flash.lua")
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    out = subprocess.run(
        [*args, "-s", str(script), f"http://127.0.0.1:{port}/v1/orders"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses: Counter[int] = Counter()
    for code, count in re.findall(r"^status (\d+) (\d+)$", out, re.M):
        statuses[int(code)] += int(count)
    result = parse_wrk(out)
    if sum(statuses.values()) != result["requests"]:
        raise RuntimeError(f"wrk's status tallies do not add up to its requests:\n{out}")
    return result, statuses


def _reruns(port: int) -> dict[str, float]:
    """xiaopu_unit_of_work_reruns_total by reason, from the server's metrics port."""
    text_ = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        reason: float(value)
        for reason, value in re.findall(
            r'^xiaopu_unit_of_work_reruns_total\{reason="(\w+)"\} ([\d.e+]+)$', text_, re.M
        )
    }


class WaitSampler:
    """Samples, every 100 ms while on, what the bench database's active backends wait on
    (pg_stat_activity's wait events, and for row-lock queues the relation of the tuple lock)."""

    def __init__(self, url: str, database: str) -> None:
        self.url = _libpq(url)
        self.database = database
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WaitSampler:
        self.counts = Counter()
        self.samples = 0
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT coalesce(a.wait_event_type || ':' || a.wait_event, 'CPU') AS what, "
                    "(SELECT string_agg(DISTINCT l.relation::regclass::text, ',') "
                    " FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted "
                    " AND l.relation IS NOT NULL) AS rel "
                    "FROM pg_stat_activity a WHERE a.datname = $1 AND a.state = 'active' "
                    "AND a.pid <> pg_backend_pid()",
                    self.database,
                )
                self.samples += 1
                for row in rows:
                    key = row["what"] + (f" ({row['rel']})" if row["rel"] else "")
                    self.counts[key] += 1
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        top = self.counts.most_common(8)
        return ", ".join(f"{what} {n / self.samples:.1f}" for what, n in top)


def flash_main(args: argparse.Namespace) -> None:
    connections = args.connections or 64
    server = server_url()
    asyncio.run(devdb.create_database(server, DB, replace=True))
    url = devdb.with_database(server, DB)
    upgrade(url, quiet=True)
    seeded = asyncio.run(_seed(url, flash=True))
    subprocess.run(["psql", "-q", "-c", "ANALYZE", _libpq(url)], check=True)
    spread_file = Path(tempfile.mkstemp(suffix=".txt")[1])
    spread_file.write_text("\n".join([seeded.slug, *seeded.variants]) + "\n")
    flash_file = Path(tempfile.mkstemp(suffix=".txt")[1])
    flash_file.write_text(f"{seeded.slug}\n{seeded.flash_variant}\n")
    ids_file = Path(tempfile.mkstemp(suffix=".ids")[1])
    os.environ["XIAOPU_BENCH_IDS"] = str(ids_file)
    metrics_port = free_port()
    env = {
        **os.environ,
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": url,
        "XIAOPU_JWT_SECRET": JWT,
        "XIAOPU_ATTRIBUTION_SECRET": ATTRIBUTION,
        "XIAOPU_LOG_LEVEL": "WARNING",
        "XIAOPU_METRICS_PORT": str(metrics_port),
    }
    port = free_port()
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    with log.open("wb") as stderr:  # its warnings (a 503's sqlstate) are tallied at the end
        app = subprocess.Popen(
            [sys.executable, "-m", "xiaopu.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    sampler = WaitSampler(url, DB)
    boost = _flash_boost()
    statuses: Counter[int] = Counter()
    flash_rounds: list[tuple[dict[str, float], Counter[int], CampaignState, dict[str, float]]] = []
    spread_rounds: list[tuple[dict[str, float], Counter[int], dict[str, float]]] = []
    waits: dict[str, list[str]] = {"flash": [], "spread": []}
    socket_errors = 0
    campaign: uuid.UUID | None = None
    try:
        wait_ready(port, "/healthz")
        # Warm up both paths; the flash one on a campaign with budget to spare, and its rate
        # sizes the rounds' budget.
        campaign = asyncio.run(_new_campaign(url, seeded, boost * FLASH_UNITS, None, args.shards))
        os.environ["XIAOPU_BENCH_CHECKOUT"] = str(spread_file)
        _, counted = _wrk_tally(port, 2, connections)
        statuses += counted
        os.environ["XIAOPU_BENCH_CHECKOUT"] = str(flash_file)
        warm, counted = _wrk_tally(port, 2, connections)
        statuses += counted
        budget_orders = args.budget_orders or max(100, int(warm["rps"] * args.seconds / 2))
        for _ in range(args.rounds):
            time.sleep(1)  # the last round's requests in flight when wrk stopped are answered
            campaign = asyncio.run(
                _new_campaign(url, seeded, boost * budget_orders, campaign, args.shards)
            )
            os.environ["XIAOPU_BENCH_CHECKOUT"] = str(flash_file)
            _checkpoint(server)
            before = _reruns(metrics_port)
            with sampler:
                result, counted = _wrk_tally(port, args.seconds, connections)
            waits["flash"].append(sampler.summary())
            after = _reruns(metrics_port)
            time.sleep(1)
            state = asyncio.run(_campaign_state(url, campaign))
            flash_rounds.append((result, counted, state, _delta(before, after)))
            statuses += counted
            socket_errors += int(result["socket_errors"])

            os.environ["XIAOPU_BENCH_CHECKOUT"] = str(spread_file)
            _checkpoint(server)
            before = _reruns(metrics_port)
            with sampler:
                result, counted = _wrk_tally(port, args.seconds, connections)
            waits["spread"].append(sampler.summary())
            after = _reruns(metrics_port)
            spread_rounds.append((result, counted, _delta(before, after)))
            statuses += counted
            socket_errors += int(result["socket_errors"])
    finally:
        app.send_signal(signal.SIGINT)
        app.wait(timeout=60)
    if campaign is not None:
        asyncio.run(_end_campaign(url, seeded, campaign))
    ids = [uuid.UUID(line) for line in ids_file.read_text().split()]
    totals = asyncio.run(_totals(url, seeded, ids))

    print(
        f"\nPOST /v1/orders, flash sale vs spread-out checkout: {args.rounds} alternating rounds "
        f"of {args.seconds}s each, {connections} connections, 1 worker, load + server + "
        "PostgreSQL on this machine"
    )
    print(
        f"flash: 1 unit per order of one variant of a live campaign ({FLASH_UNITS} units, "
        f"budget {budget_orders} orders' boost = {boost * budget_orders} minor); "
        f"spread: 1 unit of one of {len(seeded.variants)} variants"
    )
    print(
        f"{'round':6}{'flash/s':>9}{'p50':>8}{'p99':>8}{'spread/s':>10}{'p50':>8}{'p99':>8}"
        f"{'ratio':>7}{'reruns f/s':>12}{'non-201 f/s':>13}{'sold':>7}{'boosted':>9}"
        f"{'withheld':>9}"
    )
    ratios = []
    for i, ((f, f_codes, state, f_reruns), (s, s_codes, s_reruns)) in enumerate(
        zip(flash_rounds, spread_rounds, strict=True), 1
    ):
        ratios.append(f["rps"] / s["rps"])
        reruns = (
            f"{f_reruns.get('concurrent_change', 0):.0f}/{s_reruns.get('concurrent_change', 0):.0f}"
        )
        bad = f"{f['requests'] - f_codes[201]:.0f}/{s['requests'] - s_codes[201]:.0f}"
        print(
            f"{i:<6}{f['rps']:>9.0f}{f['p50']:>8.1f}{f['p99']:>8.1f}{s['rps']:>10.0f}"
            f"{s['p50']:>8.1f}{s['p99']:>8.1f}{ratios[-1]:>7.2f}{reruns:>12}{bad:>13}"
            f"{state.sold:>7}{state.boosted:>9}{state.withheld:>9}"
        )
    median = statistics.median(ratios)
    verdict = "meets" if median >= FLASH_TARGET else "BELOW"
    print(
        f"median ratio flash ÷ spread: {median:.2f} ({verdict} the target >= {FLASH_TARGET}); "
        "p50/p99 in ms; reruns = ConcurrentChange reruns during the round"
    )
    if args.waits:
        for kind, summaries in waits.items():
            for i, summary in enumerate(summaries, 1):
                print(f"waits {kind} round {i} (active backends per sample): {summary}")

    problems = []
    for i, (_, counted, state, _) in enumerate(flash_rounds, 1):
        if state.units_left == 0:
            print(f"round {i}: the {FLASH_UNITS} units ran out (later orders at regular price)")
        if state.withheld == 0:
            print(f"round {i}: the budget did not run out (raise the rate or --budget-orders)")
        print(
            f"flash round {i}: units sold at campaign terms {state.sold} = allocation taken "
            f"{state.taken} <= allocated {state.allocated}; boost reserved {state.reserved} <= "
            f"budget {state.budget}, Σ line boosts {state.line_boosts}; "
            f"{state.orders} orders stored, {counted[201]} answered 201"
        )
        problems += [f"flash round {i}: {p}" for p in state.problems()]
    answered = statuses[201]
    others = {code: n for code, n in sorted(statuses.items()) if code != 201}
    print(f"answers by status (warm-up included): 201: {answered}, others: {others or 'none'}")
    if socket_errors:
        print(f"rounds with socket errors (timeouts): {socket_errors}")
    warned = Counter(
        (event.group(0), state.group(1) if state else "-")
        for line in log.read_text(errors="replace").splitlines()
        if (event := re.search(r"database_\w+|unhandled_error", line))
        for state in [re.search(r"sqlstate\W+(\w{5})", line)]
    )
    if warned:
        print(f"server warnings (event, sqlstate): {dict(warned)}")
    print(
        f"orders answered 201 {answered} ({len(ids)} ids), of them stored {totals.found}; orders "
        f"stored {totals.orders} (the rest were in flight when wrk stopped)"
    )
    print(
        f"stock: spread variants {totals.spread_taken} taken for {totals.spread_sold} units "
        f"ordered; flash variant {totals.flash_taken} gone for {totals.flash_sold} units ordered "
        "(every campaign ended, its unsold units back)"
    )
    if len(ids) != answered or totals.found != len(ids) or len(set(ids)) != len(ids):
        problems.append("an order answered 201 is not stored")
    if not 0 <= totals.orders - answered <= (2 * args.rounds + 2) * connections:
        problems.append("more orders stored than answered and in flight")
    if totals.spread_taken != totals.spread_sold or totals.flash_taken != totals.flash_sold:
        problems.append("stock accounting mismatch")
    if problems:
        sys.exit("\n".join(problems))
    if os.environ.get("XIAOPU_BENCH_KEEP"):
        print(f"kept database {DB}")
    else:
        asyncio.run(devdb.drop_database(server, DB))
    for path in (spread_file, flash_file, ids_file, log):
        path.unlink()


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


if __name__ == "__main__":
    main()
