"""Building the scale bench's database: Taoxiaopu-like volumes at a scale factor, set-based SQL."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.insights import rollup
from xiaopu.matching import service as matching
from xiaopu.matching.compute import Result

MARKER = "bench_scale_marker"
PUERH_EVERY = 111  # one product in 111 is a 普洱 tea: 9k matches at --scale 0.1
BIG_SHOP = 1  # shops, suppliers, accounts, products... are numbered; ids derive from numbers
BIG_SUPPLIER = 1
SHIPPING_MINOR = 800
PLATFORM_FEE_BPS = 500
DAYS = 90  # clicks and orders spread over three months
# The platform's time zone the app counts local days in (Settings.time_zone's default).
ZONE = "Asia/Shanghai"
# An order's first product: a multiplicative hash of its number (see product_of_order).
ORDER_PRODUCT = "((o * 2654435761) % 4294967296)"
# Campaigns (超级品牌团): the big supplier's live one (number 1) on CAMPAIGN_PRODUCTS of its
# products, started CAMPAIGN_DAYS ago and sold since in one order in three (of those with one
# supplier order), in shops that signed up: those orders' shops, the big and small shops and one
# shop in SIGNED_UP_EVERY; the small supplier's live one (2) on two of its products, without
# sales yet; and the big supplier's PAST_CAMPAIGNS settled ones (3, 4, ...) for its list.
CAMPAIGN_PRODUCTS = 50
CAMPAIGN_DAYS = 3
CAMPAIGN_BOOST_BPS = 500
CAMPAIGN_DISCOUNT_MINOR = 100  # off the regular price: prices stay whole hundreds, rates exact
CAMPAIGN_UNITS = 10_000  # allocated per variant
CAMPAIGN_BUDGET_MINOR = 10**10
CAMPAIGN_SHARDS = 16  # Settings.campaign_shards' default
SIGNED_UP_EVERY = 7
PAST_CAMPAIGNS = 10


@dataclass(frozen=True)
class Volumes:
    """Row counts at a scale factor: --scale 0.1 is about a tenth of Taoxiaopu."""

    scale: float
    shops: int
    suppliers: int
    products: int
    clicks: int
    orders: int
    big_shop_selections: int

    @classmethod
    def at(cls, scale: float) -> Volumes:
        products = max(100, round(10_000_000 * scale / 10) * 10)  # a multiple of 10
        return cls(
            scale=scale,
            shops=max(20, round(3_000_000 * scale)),
            suppliers=max(5, round(100_000 * scale)),
            products=products,
            clicks=max(1000, round(100_000_000 * scale)),
            orders=max(200, round(10_000_000 * scale)),
            big_shop_selections=min(products, max(10, round(30_000 * scale))),
        )

    @property
    def operator(self) -> int:
        """The account number of the platform operator (after shop and supplier owners)."""
        return self.shops + self.suppliers + 1

    @property
    def small_shop(self) -> int:
        return 2 + self.shops // 2

    @property
    def small_supplier(self) -> int:
        return 2 + self.suppliers // 2

    @property
    def campaign_products(self) -> int:
        """How many of the big supplier's products (10, 20, ...) its live campaign sells."""
        return min(CAMPAIGN_PRODUCTS, self.products // 10)


def product_of_order(v: Volumes, o: int) -> int:
    """Order o's first product, by its hash; but an order of the big supplier's live campaign
    (see `scale_parts`: one in three since its start with one supplier order: 3, 6, ...) sells one
    of its products instead. This is the hash's only: callers look among the older orders."""
    return 1 + ((o * 2654435761) % 4294967296) % v.products


def supplier_of_product(v: Volumes, p: int) -> int:
    return BIG_SUPPLIER if p % 10 == 0 else 2 + p % (v.suppliers - 1)


def link_code(g: int) -> str:
    """Share link g's code (8 to 16 letters and digits, as the redirect accepts)."""
    return f"k{g:09d}"


def database_name(scale: float) -> str:
    return "xiaopu_scale_" + f"{scale:g}".replace(".", "_").replace("-", "_")


# Kinds in deterministic ids: (kind, number) -> uuid, the same in SQL (pg_temp.xid) and Python.
K_ACCOUNT, K_SHOP, K_SUPPLIER, K_PRODUCT, K_VARIANT, K_ORDER, K_PART, K_LINE = range(1, 9)
K_COMMISSION, K_SHIPPING, K_LINK, K_MEMBER = 9, 10, 11, 12
K_ACC_PENDING, K_ACC_AVAILABLE, K_ACC_PAYABLE_PENDING, K_ACC_PAYABLE, K_ACC_PLATFORM = range(13, 18)
K_TX_ACCRUAL, K_TX_COMPLETION = 18, 19
K_CAMPAIGN, K_BOOST = 20, 21


def xid(kind: int, number: int) -> str:
    return f"{kind:08x}-0000-4000-8000-{number:012x}"


FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION pg_temp.xid(kind int, n bigint) RETURNS uuid
       LANGUAGE sql IMMUTABLE AS
       $$ SELECT (lpad(to_hex(kind), 8, '0') || '-0000-4000-8000-'
                  || lpad(to_hex(n), 12, '0'))::uuid $$""",
]


def _steps(v: Volumes, t0: datetime) -> list[tuple[str, str]]:
    """(table, statement) in load order. Every statement is one INSERT ... SELECT."""
    ns, nsup, np_, nc, no = v.shops, v.suppliers, v.products, v.clicks, v.orders
    t = f"timestamptz '{t0.isoformat()}'"
    sup = f"(CASE WHEN p % 10 = 0 THEN {BIG_SUPPLIER} ELSE 2 + p % {nsup - 1} END)"
    price = "(1000 + (p % 90) * 100)"
    cbps = "(500 + (p % 20) * 100)"
    # The big supplier's live campaign: its times, and whether a part (o, k, at) sells in it.
    starts = f"({t} - interval '{CAMPAIGN_DAYS} days')"
    # Orders of one supplier order only: a second part may be the big supplier's already.
    in_campaign = f"(o % 3 = 0 AND o % 5 <> 0 AND at >= {starts})"
    campaign_product = f"(10 * (1 + (o / 3) % {v.campaign_products}))"
    small_products = (
        f"SELECT p FROM generate_series(1, {np_}) p WHERE p % 10 <> 0 "
        f"AND 2 + p % {nsup - 1} = {v.small_supplier} AND p % 25 NOT IN (1, 2) ORDER BY p LIMIT 2"
    )
    boost = "(price * bbps / 10000)"  # exact: whole hundreds at 500 bps
    return [
        (
            "accounts",
            f"""INSERT INTO accounts (id, email, password_hash, display_name, status, created_at,
                updated_at)
            SELECT pg_temp.xid({K_ACCOUNT}, g), 'a' || g || '@scale.example', :hash,
                'user ' || g, 'active', {t} - interval '1 year', {t} - interval '1 year'
            FROM generate_series(1, {v.operator}) g""",
        ),
        (
            "operators",
            f"""INSERT INTO operators (account_id, role, created_at)
            VALUES (pg_temp.xid({K_ACCOUNT}, {v.operator}), 'admin', {t} - interval '1 year')""",
        ),
        (
            "shops",
            f"""INSERT INTO shops (id, owner_account_id, name, slug, level, completed_sales,
                created_at, updated_at)
            SELECT pg_temp.xid({K_SHOP}, g), pg_temp.xid({K_ACCOUNT}, g), 'Shop ' || g,
                'shop-' || g, 'standard', 0, {t} - interval '1 year', {t} - interval '1 year'
            FROM generate_series(1, {ns}) g""",
        ),
        (
            "suppliers",
            f"""INSERT INTO suppliers (id, name, status, shipping_fee_minor, shipping_currency,
                contact_name, contact_email, created_at, updated_at)
            SELECT pg_temp.xid({K_SUPPLIER}, g), 'Supplier ' || g, 'active', {SHIPPING_MINOR},
                'CNY', 'contact ' || g, 's' || g || '@scale.example', {t} - interval '1 year',
                {t} - interval '1 year'
            FROM generate_series(1, {nsup}) g""",
        ),
        (
            "supplier_members",
            f"""INSERT INTO supplier_members (id, supplier_id, account_id, role, created_at)
            SELECT pg_temp.xid({K_MEMBER}, g), pg_temp.xid({K_SUPPLIER}, g),
                pg_temp.xid({K_ACCOUNT}, {ns} + g), 'owner', {t} - interval '1 year'
            FROM generate_series(1, {nsup}) g""",
        ),
        (
            "products",
            # One in 10 products is the big supplier's; 8% are drafts or archived.
            f"""INSERT INTO products (id, supplier_id, ref, title, description, image_urls,
                category_id, brand, return_window_days, commission_bps, markup_ceiling_bps,
                status, search_terms, max_commission_bps, min_price_minor, created_at,
                updated_at)
            SELECT pg_temp.xid({K_PRODUCT}, p), pg_temp.xid({K_SUPPLIER}, {sup}), 'P' || p,
                CASE WHEN p % {PUERH_EVERY} = 0 THEN '云南普洱茶 ' ELSE '商品 ' END || p,
                '', ARRAY['https://img.scale.example/' || p || '.jpg'],
                c.ids[1 + p % array_length(c.ids, 1)], NULL, 7, {cbps}, 3000,
                CASE p % 25 WHEN 1 THEN 'draft' WHEN 2 THEN 'archived' ELSE 'active' END,
                CASE WHEN p % {PUERH_EVERY} = 0 THEN '云 南 普 洱 茶 云南 南普 普洱 洱茶 '
                     ELSE '商 品 商品 ' END || p,
                {cbps}, {price}, {t} - interval '200 days' + p * interval '1 second',
                {t} - interval '200 days' + p * interval '1 second'
            FROM generate_series(1, {np_}) p,
                (SELECT array_agg(id ORDER BY id) AS ids FROM categories
                 WHERE id NOT IN (SELECT parent_id FROM categories WHERE parent_id IS NOT NULL))
                AS c""",
        ),
        (
            "variants",
            f"""INSERT INTO variants (id, product_id, supplier_id, sku, options, price_minor,
                currency, stock, weight_grams, commission_bps, low_stock_threshold, created_at,
                updated_at)
            SELECT pg_temp.xid({K_VARIANT}, p), pg_temp.xid({K_PRODUCT}, p),
                pg_temp.xid({K_SUPPLIER}, {sup}), 'S' || p, '{{}}', {price}, 'CNY', 1000, 500,
                NULL, 0, {t} - interval '200 days', {t} - interval '200 days'
            FROM generate_series(1, {np_}) p""",
        ),
        (
            "shop_products",
            # The big shop selects many products; every other shop five.
            f"""INSERT INTO shop_products (id, shop_id, product_id, blurb, markup_bps,
                created_at)
            SELECT gen_random_uuid(), pg_temp.xid({K_SHOP}, {BIG_SHOP}),
                pg_temp.xid({K_PRODUCT}, 1 + (k * 7) % {np_}), NULL, 1000,
                {t} - interval '100 days' + k * interval '1 minute'
            FROM generate_series(1, {v.big_shop_selections}) k
            UNION ALL
            SELECT gen_random_uuid(), pg_temp.xid({K_SHOP}, g),
                pg_temp.xid({K_PRODUCT}, 1 + ((g * 5 + k) * 7919) % {np_}), NULL, 1000,
                {t} - interval '100 days' + k * interval '1 minute'
            FROM generate_series(2, {ns}) g, generate_series(1, 5) k""",
        ),
        (
            "share_links",
            # One link a shop; the big shop 99 more. Link 1 is the big shop's busy one.
            f"""INSERT INTO share_links (id, code, shop_id, product_id, label, created_at)
            SELECT pg_temp.xid({K_LINK}, g), 'k' || lpad(g::text, 9, '0'),
                pg_temp.xid({K_SHOP}, CASE WHEN g > {ns} THEN {BIG_SHOP} ELSE g END),
                NULL, 'link ' || g, {t} - interval '120 days'
            FROM generate_series(1, {ns + 99}) g""",
        ),
        (
            "clicks",
            # One in 20 clicks is on the big shop's link 1; the rest over the other shops.
            f"""INSERT INTO clicks (id, created_at, link_id, shop_id, product_id, visitor_id,
                referrer_host, agent_class, is_repeat)
            SELECT gen_random_uuid(),
                {t} - interval '{DAYS} days' * ({nc} - c)::float8 / {nc} - interval '1 second',
                pg_temp.xid({K_LINK}, l), pg_temp.xid({K_SHOP}, l), NULL,
                'v' || (c * 2654435761) % greatest({nc} / 3, 1), NULL,
                (ARRAY['mobile', 'desktop', 'preview', 'bot', 'unknown'])[1 + c % 5], false
            FROM (SELECT c, CASE WHEN c % 20 = 0 THEN {BIG_SHOP}
                                 ELSE 2 + c % {ns - 1} END AS l
                  FROM generate_series(1, {nc}) c) s""",
        ),
        (
            "link_daily_visitors",
            f"""INSERT INTO link_daily_visitors (link_id, day, visitor_id)
            SELECT DISTINCT link_id, (created_at AT TIME ZONE '{ZONE}')::date, visitor_id
            FROM clicks""",
        ),
        (
            "link_daily_stats",
            f"""INSERT INTO link_daily_stats (link_id, day, shop_id, product_id, clicks,
                unique_visitors)
            SELECT c.link_id, c.day, l.shop_id, l.product_id, c.clicks, c.visitors
            FROM (SELECT link_id, (created_at AT TIME ZONE '{ZONE}')::date AS day,
                    count(*) AS clicks, count(DISTINCT visitor_id) AS visitors
                  FROM clicks GROUP BY 1, 2) c
            JOIN share_links l ON l.id = c.link_id""",
        ),
        (
            "shop_daily_traffic",
            """INSERT INTO shop_daily_traffic (shop_id, day, clicks, unique_visitors)
            SELECT shop_id, day, sum(clicks), sum(unique_visitors) FROM link_daily_stats
            GROUP BY shop_id, day""",
        ),
        (
            "scale_parts",
            # Staging: one row per supplier order (an order's first part, and a second for one
            # order in five), with what every later table derives from it. Parts pick a product;
            # its supplier is theirs, so the big supplier's 10% of products get 10% of parts.
            # Three in ten are completed (their return window closed 10 days after payment).
            # A part of the big supplier's live campaign (camp = 1) sells one of its products at
            # the campaign price (regular less CAMPAIGN_DISCOUNT_MINOR) with its boost.
            f"""CREATE UNLOGGED TABLE scale_parts AS
            SELECT pid, o, p, {sup} AS sup, shop, 1 + (pid % 16 = 0)::int AS nlines,
                {price} - CASE WHEN camp THEN {CAMPAIGN_DISCOUNT_MINOR} ELSE 0 END AS price,
                {cbps} AS cbps, CASE WHEN camp THEN 1 END AS camp,
                CASE WHEN camp THEN {CAMPAIGN_BOOST_BPS} ELSE 0 END AS bbps,
                CASE WHEN (o * 3 + k) % 10 < 3 AND at < {t} - interval '10 days'
                     THEN 'completed'
                     ELSE (ARRAY['delivered', 'delivered', 'delivered', 'delivered',
                                 'delivered', 'delivered', 'shipped', 'shipped', 'accepted',
                                 'paid'])[1 + (o * 3 + k) % 10] END AS st,
                at
            FROM (
                SELECT pid, o, k, shop, at, camp,
                    CASE WHEN camp THEN {campaign_product} ELSE hashed END AS p
                FROM (
                    SELECT 2 * o + k - 1 AS pid, o, k,
                        CASE WHEN k = 1 THEN 1 + {ORDER_PRODUCT} % {np_}
                             ELSE (1 + {ORDER_PRODUCT} % {np_}) % {np_} + 1 END AS hashed,
                        CASE WHEN o % 20 = 0 THEN {BIG_SHOP} ELSE 2 + o % {ns - 1} END AS shop,
                        {t} - interval '{DAYS} days' * ({no} - o)::float8 / {no}
                            - interval '1 hour' AS at
                    FROM generate_series(1, {no}) o,
                        generate_series(1, CASE WHEN o % 5 = 0 THEN 2 ELSE 1 END) k
                ) h, LATERAL (SELECT {in_campaign} AS camp) c
            ) s""",
        ),
        (
            "orders",
            f"""INSERT INTO orders (id, shop_id, buyer_account_id, access_token_hash,
                buyer_phone, address, note, status, currency, items_minor, shipping_minor,
                total_minor, refunded_minor, attribution, self_purchase, expires_at, paid_at,
                created_at, updated_at)
            SELECT pg_temp.xid({K_ORDER}, o), pg_temp.xid({K_SHOP}, min(shop)), NULL,
                sha256(('scale-order-' || o)::bytea), '+8613800138000',
                '{{"recipient": "张三", "phone": "+8613800138000", "country": "CN",
                   "province": "云南", "city": "昆明", "line1": "1号"}}',
                NULL, 'paid', 'CNY', sum(nlines * price * 11 / 10),
                {SHIPPING_MINOR} * count(*), sum(nlines * price * 11 / 10)
                + {SHIPPING_MINOR} * count(*), 0, 'none', false,
                min(at) + interval '30 minutes', min(at), min(at), min(at)
            FROM scale_parts GROUP BY o""",
        ),
        (
            "supplier_orders",
            f"""INSERT INTO supplier_orders (id, order_id, supplier_id, shop_id, status,
                currency, items_minor, shipping_minor, total_minor, refunded_minor,
                shipping_refunded, carrier, tracking_number, paid_at, accepted_at, shipped_at,
                delivered_at, return_closes_at, completed_at, created_at, updated_at)
            SELECT pg_temp.xid({K_PART}, pid), pg_temp.xid({K_ORDER}, o),
                pg_temp.xid({K_SUPPLIER}, sup), pg_temp.xid({K_SHOP}, shop), st, 'CNY',
                nlines * price * 11 / 10, {SHIPPING_MINOR},
                nlines * price * 11 / 10 + {SHIPPING_MINOR}, 0, false,
                CASE WHEN st IN ('shipped', 'delivered', 'completed') THEN 'sf' END,
                CASE WHEN st IN ('shipped', 'delivered', 'completed') THEN 'SF' || pid END,
                at, CASE WHEN st <> 'paid' THEN at + interval '1 hour' END,
                CASE WHEN st IN ('shipped', 'delivered', 'completed')
                     THEN at + interval '1 day' END,
                CASE WHEN st IN ('delivered', 'completed') THEN at + interval '3 days' END,
                CASE WHEN st IN ('delivered', 'completed') THEN at + interval '10 days' END,
                CASE WHEN st = 'completed' THEN at + interval '10 days' END, at, at
            FROM scale_parts""",
        ),
        (
            "order_lines",
            f"""INSERT INTO order_lines (id, order_id, supplier_order_id, product_id,
                variant_id, sku, title, options, quantity, currency, unit_price_minor,
                unit_markup_minor, base_minor, markup_minor, commission_bps, platform_fee_bps,
                return_window_days, returned_quantity, campaign_id, boost_bps, boost_withheld,
                created_at)
            SELECT pg_temp.xid({K_LINE}, 2 * pid + j - 1), pg_temp.xid({K_ORDER}, o),
                pg_temp.xid({K_PART}, pid), pg_temp.xid({K_PRODUCT}, p),
                pg_temp.xid({K_VARIANT}, p), 'S' || p, '商品 ' || p, '{{}}', 1, 'CNY', price,
                price / 10, price, price / 10, cbps, {PLATFORM_FEE_BPS}, 7, 0,
                pg_temp.xid({K_CAMPAIGN}, camp), bbps, false, at
            FROM scale_parts, generate_series(1, nlines) j""",
        ),
        (
            "commissions",
            # Four parts a line (shop commission and markup, platform fee, supplier share), a
            # fifth (the shop's boost) on a campaign's, and the supplier's shipping a supplier
            # order: what the buyer paid, to the cent.
            f"""INSERT INTO commissions (id, order_id, supplier_order_id, order_line_id,
                shop_id, supplier_id, beneficiary, kind, currency, base_minor, rate_bps, rule,
                rounding, accrued_minor, reversed_minor, status, created_at, updated_at)
            SELECT pg_temp.xid({K_COMMISSION}, 4 * (2 * pid + j - 1) + x.n),
                pg_temp.xid({K_ORDER}, o), pg_temp.xid({K_PART}, pid),
                pg_temp.xid({K_LINE}, 2 * pid + j - 1), pg_temp.xid({K_SHOP}, shop),
                pg_temp.xid({K_SUPPLIER}, sup), x.beneficiary, x.kind, 'CNY',
                CASE WHEN x.kind = 'markup' THEN price / 10 ELSE price END,
                CASE x.kind WHEN 'commission' THEN cbps
                            WHEN 'platform_fee' THEN {PLATFORM_FEE_BPS} END,
                'normal', 'exact',
                CASE x.kind WHEN 'commission' THEN price * cbps / 10000
                            WHEN 'markup' THEN price / 10
                            WHEN 'platform_fee' THEN price * {PLATFORM_FEE_BPS} / 10000
                            ELSE price - price * cbps / 10000 - {boost}
                                 - price * {PLATFORM_FEE_BPS} / 10000 END,
                0, CASE WHEN st = 'completed' THEN 'available' ELSE 'pending' END, at,
                CASE WHEN st = 'completed' THEN at + interval '10 days' ELSE at END
            FROM scale_parts, generate_series(1, nlines) j,
                (VALUES (0, 'shop', 'commission'), (1, 'shop', 'markup'),
                        (2, 'platform', 'platform_fee'), (3, 'supplier', 'supplier_share'))
                    AS x(n, beneficiary, kind)
            UNION ALL
            SELECT pg_temp.xid({K_BOOST}, 2 * pid + j - 1), pg_temp.xid({K_ORDER}, o),
                pg_temp.xid({K_PART}, pid), pg_temp.xid({K_LINE}, 2 * pid + j - 1),
                pg_temp.xid({K_SHOP}, shop), pg_temp.xid({K_SUPPLIER}, sup), 'shop', 'boost',
                'CNY', price, bbps, 'normal', 'exact', {boost}, 0,
                CASE WHEN st = 'completed' THEN 'available' ELSE 'pending' END, at,
                CASE WHEN st = 'completed' THEN at + interval '10 days' ELSE at END
            FROM scale_parts, generate_series(1, nlines) j WHERE bbps > 0
            UNION ALL
            SELECT pg_temp.xid({K_SHIPPING}, pid), pg_temp.xid({K_ORDER}, o),
                pg_temp.xid({K_PART}, pid), NULL, pg_temp.xid({K_SHOP}, shop),
                pg_temp.xid({K_SUPPLIER}, sup), 'supplier', 'shipping', 'CNY',
                {SHIPPING_MINOR}, NULL, 'normal', 'exact', {SHIPPING_MINOR}, 0,
                CASE WHEN st = 'completed' THEN 'available' ELSE 'pending' END, at,
                CASE WHEN st = 'completed' THEN at + interval '10 days' ELSE at END
            FROM scale_parts""",
        ),
        (
            "commission_events",
            """INSERT INTO commission_events (id, commission_id, action, status, amount_minor,
                cause, at)
            SELECT gen_random_uuid(), c.id, 'accrued', 'pending', c.accrued_minor,
                'accrual:' || c.supplier_order_id, c.created_at
            FROM commissions c
            UNION ALL
            SELECT gen_random_uuid(), c.id, 'released', 'available', c.accrued_minor,
                'completion:' || c.supplier_order_id, c.updated_at
            FROM commissions c WHERE c.status = 'available'""",
        ),
        (
            "ledger_accounts",
            # Counted accounts start at 0 and are set to their entries' sum below, as postings
            # keep them; the platform's keep no counter (see models/ledger.py).
            f"""INSERT INTO ledger_accounts (id, owner_kind, owner_id, purpose, currency,
                balance_minor, created_at)
            SELECT pg_temp.xid(a.k, g), 'shop', pg_temp.xid({K_SHOP}, g), a.purpose, 'CNY', 0,
                {t} - interval '1 year'
            FROM generate_series(1, {ns}) g,
                (VALUES ({K_ACC_PENDING}, 'earnings_pending'),
                        ({K_ACC_AVAILABLE}, 'earnings_available')) AS a(k, purpose)
            UNION ALL
            SELECT pg_temp.xid(a.k, g), 'supplier', pg_temp.xid({K_SUPPLIER}, g), a.purpose,
                'CNY', 0, {t} - interval '1 year'
            FROM generate_series(1, {nsup}) g,
                (VALUES ({K_ACC_PAYABLE_PENDING}, 'payable_pending'),
                        ({K_ACC_PAYABLE}, 'payable')) AS a(k, purpose)
            UNION ALL
            SELECT pg_temp.xid({K_ACC_PLATFORM}, n), 'platform',
                '00000000-0000-0000-0000-000000000000', purpose, 'CNY', NULL,
                {t} - interval '1 year'
            FROM (VALUES (1, 'clearing'), (2, 'fees_pending'), (3, 'fees')) AS a(n, purpose)""",
        ),
        (
            "ledger_transactions",
            f"""INSERT INTO ledger_transactions (id, kind, cause, reverses_id, memo, created_at)
            SELECT pg_temp.xid({K_TX_ACCRUAL}, pid), 'accrual',
                'accrual:' || pg_temp.xid({K_PART}, pid), NULL::uuid, NULL::varchar, at
            FROM scale_parts
            UNION ALL
            SELECT pg_temp.xid({K_TX_COMPLETION}, pid), 'completion',
                'completion:' || pg_temp.xid({K_PART}, pid), NULL::uuid, NULL::varchar,
                at + interval '10 days'
            FROM scale_parts WHERE st = 'completed'""",
        ),
        (
            "ledger_entries",
            # Accrual: clearing debited what the buyer paid, each beneficiary credited its
            # share; completion: pending shares moved to available. The statement trigger
            # checks every transaction balances.
            f"""INSERT INTO ledger_entries (id, transaction_id, account_id, amount_minor,
                currency, created_at)
            SELECT gen_random_uuid(), e.tx, e.account, e.amount, 'CNY', e.at
            FROM (
                SELECT pid, at, st, sup, shop,
                    nlines * (price * cbps / 10000 + price / 10 + {boost}) AS s,
                    nlines * (price * {PLATFORM_FEE_BPS} / 10000) AS f,
                    nlines * (price - price * cbps / 10000 - {boost}
                              - price * {PLATFORM_FEE_BPS} / 10000) + {SHIPPING_MINOR} AS pay
                FROM scale_parts
            ) q,
            LATERAL (VALUES
                (pg_temp.xid({K_TX_ACCRUAL}, pid), pg_temp.xid({K_ACC_PLATFORM}, 1),
                 q.s + q.f + q.pay, q.at, true),
                (pg_temp.xid({K_TX_ACCRUAL}, pid), pg_temp.xid({K_ACC_PENDING}, shop), -q.s,
                 q.at, true),
                (pg_temp.xid({K_TX_ACCRUAL}, pid), pg_temp.xid({K_ACC_PLATFORM}, 2), -q.f,
                 q.at, true),
                (pg_temp.xid({K_TX_ACCRUAL}, pid), pg_temp.xid({K_ACC_PAYABLE_PENDING}, sup),
                 -q.pay, q.at, true),
                (pg_temp.xid({K_TX_COMPLETION}, pid), pg_temp.xid({K_ACC_PENDING}, shop), q.s,
                 q.at + interval '10 days', q.st = 'completed'),
                (pg_temp.xid({K_TX_COMPLETION}, pid), pg_temp.xid({K_ACC_AVAILABLE}, shop),
                 -q.s, q.at + interval '10 days', q.st = 'completed'),
                (pg_temp.xid({K_TX_COMPLETION}, pid), pg_temp.xid({K_ACC_PLATFORM}, 2), q.f,
                 q.at + interval '10 days', q.st = 'completed'),
                (pg_temp.xid({K_TX_COMPLETION}, pid), pg_temp.xid({K_ACC_PLATFORM}, 3), -q.f,
                 q.at + interval '10 days', q.st = 'completed'),
                (pg_temp.xid({K_TX_COMPLETION}, pid),
                 pg_temp.xid({K_ACC_PAYABLE_PENDING}, sup), q.pay,
                 q.at + interval '10 days', q.st = 'completed'),
                (pg_temp.xid({K_TX_COMPLETION}, pid), pg_temp.xid({K_ACC_PAYABLE}, sup),
                 -q.pay, q.at + interval '10 days', q.st = 'completed')
            ) AS e(tx, account, amount, at, wanted)
            WHERE e.wanted""",
        ),
        (
            "ledger_accounts (counters)",
            """UPDATE ledger_accounts a SET balance_minor = s.total
            FROM (SELECT account_id, sum(amount_minor) AS total FROM ledger_entries
                  GROUP BY account_id) s
            WHERE a.id = s.account_id AND a.balance_minor IS NOT NULL""",
        ),
        *_campaign_steps(v, t, starts, small_products),
        ("scale_parts (dropped)", "DROP TABLE scale_parts"),
        (
            "rollup_changes",
            # Loaded, not changed, so no trigger logged them: every paid order waits for the
            # dashboards' rollup (roll_up, after the build).
            "INSERT INTO rollup_changes (order_id) SELECT id FROM orders WHERE paid_at IS NOT NULL",
        ),
    ]


def _campaign_steps(v: Volumes, t: str, starts: str, small_products: str) -> list[tuple[str, str]]:
    """The campaigns, their items, budgets, shards and shops, and the live one's results, as
    a campaign scheduled, joined and sold (orders above) would have left them: the shards hold
    the allocation less the units sold and the budget less the boost parts, and the results
    are the clock's refresh (campaigns/repository.py `_REFRESH`) of every campaign at once."""
    ns, price = v.shops, "(1000 + (p % 90) * 100)"
    past = f"{t} - interval '20 days' * (n - 2)"
    brief = (
        '{"selling_points": ["产地直发", "限时特价"], "images": [], '
        '"share_text": "超级品牌团，群里的朋友先抢！"}'
    )
    return [
        (
            "campaigns",
            f"""INSERT INTO campaigns (id, supplier_id, title, brief, recruitment, boost_bps,
                status, warm_up_at, starts_at, ends_at, scheduled_at, ended_at, ended_early,
                starting_announced_at, budget_exhausted_at, settled_at, results_refreshed_at,
                created_at, updated_at)
            SELECT pg_temp.xid({K_CAMPAIGN}, n),
                pg_temp.xid({K_SUPPLIER}, CASE WHEN n = 2 THEN {v.small_supplier}
                                               ELSE {BIG_SUPPLIER} END),
                '超级品牌团 ' || n, '{brief}', 'open', {CAMPAIGN_BOOST_BPS},
                CASE WHEN n <= 2 THEN 'live' ELSE 'settled' END, s - interval '1 day', s,
                s + interval '7 days', s - interval '2 days',
                CASE WHEN n > 2 THEN s + interval '7 days' END, false, s - interval '1 hour',
                NULL, CASE WHEN n > 2 THEN s + interval '17 days' END,
                CASE WHEN n <= 2 THEN {t} ELSE s + interval '17 days' END,
                s - interval '3 days', CASE WHEN n <= 2 THEN {t} ELSE s + interval '17 days' END
            FROM generate_series(1, {2 + PAST_CAMPAIGNS}) n,
                LATERAL (SELECT CASE WHEN n <= 2 THEN {starts} ELSE {past} END AS s) x""",
        ),
        (
            "campaign_items",
            f"""INSERT INTO campaign_items (campaign_id, variant_id, product_id, currency,
                price_minor, regular_price_minor, allocated_units)
            SELECT pg_temp.xid({K_CAMPAIGN}, c), pg_temp.xid({K_VARIANT}, p),
                pg_temp.xid({K_PRODUCT}, p), 'CNY', {price} - {CAMPAIGN_DISCOUNT_MINOR},
                {price}, CASE WHEN c = 1 THEN {CAMPAIGN_UNITS} ELSE 100 END
            FROM (
                SELECT 1 AS c, 10 * j AS p FROM generate_series(1, {v.campaign_products}) j
                UNION ALL SELECT 2, p FROM ({small_products}) s
                UNION ALL SELECT n, 10 FROM generate_series(3, {2 + PAST_CAMPAIGNS}) n
            ) i""",
        ),
        (
            "campaign_budgets",
            f"""INSERT INTO campaign_budgets (campaign_id, currency, budget_minor,
                released_minor)
            SELECT pg_temp.xid({K_CAMPAIGN}, n), 'CNY', {CAMPAIGN_BUDGET_MINOR},
                CASE WHEN n > 2 THEN {CAMPAIGN_BUDGET_MINOR} END
            FROM generate_series(1, {2 + PAST_CAMPAIGNS}) n""",
        ),
        (
            "campaign_unit_shards",
            # The allocation less what the lines took, split as scheduling splits it; a settled
            # campaign's were swept back to stock at its end.
            f"""INSERT INTO campaign_unit_shards (campaign_id, variant_id, shard, units_left)
            SELECT i.campaign_id, i.variant_id, s,
                CASE WHEN c.status = 'settled' THEN 0
                     ELSE q.left_units / {CAMPAIGN_SHARDS}
                          + (s < q.left_units % {CAMPAIGN_SHARDS})::int END
            FROM campaign_items i JOIN campaigns c ON c.id = i.campaign_id
            CROSS JOIN LATERAL (
                SELECT i.allocated_units - coalesce(sum(l.quantity), 0)::int AS left_units
                FROM order_lines l
                WHERE l.campaign_id = i.campaign_id AND l.variant_id = i.variant_id) q,
                generate_series(0, {CAMPAIGN_SHARDS - 1}) s""",
        ),
        (
            "campaign_budget_shards",
            f"""INSERT INTO campaign_budget_shards (campaign_id, currency, shard, left_minor)
            SELECT b.campaign_id, b.currency, s,
                q.left_minor / {CAMPAIGN_SHARDS} + (s < q.left_minor % {CAMPAIGN_SHARDS})::int
            FROM campaign_budgets b
            CROSS JOIN LATERAL (
                SELECT b.budget_minor
                    - coalesce(sum(c.accrued_minor - c.reversed_minor), 0)::bigint AS left_minor
                FROM order_lines l JOIN commissions c ON c.order_line_id = l.id
                WHERE l.campaign_id = b.campaign_id AND c.kind = 'boost') q,
                generate_series(0, {CAMPAIGN_SHARDS - 1}) s""",
        ),
        (
            "campaign_shops",
            # Signed up before the start: the shops the live campaign's orders are in, the big
            # and the small shop, and one shop in SIGNED_UP_EVERY; the small supplier's: the
            # big and small shops and one in a thousand.
            f"""INSERT INTO campaign_shops (campaign_id, shop_id, invited_at, invited_via,
                joined_at, created_at)
            SELECT pg_temp.xid({K_CAMPAIGN}, c), pg_temp.xid({K_SHOP}, g), NULL, NULL,
                {starts} - interval '1 day', {starts} - interval '1 day'
            FROM (
                SELECT 1 AS c, shop AS g FROM scale_parts WHERE camp = 1
                UNION SELECT 1, g FROM generate_series(1, {ns}) g
                WHERE g % {SIGNED_UP_EVERY} = 0 OR g IN ({BIG_SHOP}, {v.small_shop})
                UNION SELECT 2, g FROM generate_series(1, {ns}) g
                WHERE g % 1000 = 3 OR g IN ({BIG_SHOP}, {v.small_shop})
            ) j""",
        ),
        (
            "campaign_results",
            # As the clock's refresh writes them (campaigns/repository.py `_REFRESH`).
            """INSERT INTO campaign_results (campaign_id, shop_id, product_id, currency, orders,
                units, gmv_minor, refunded_units, refunds_minor, boost_minor, unboosted_units)
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
            WHERE l.campaign_id IS NOT NULL AND o.paid_at IS NOT NULL
            GROUP BY l.campaign_id, o.shop_id, l.product_id, l.currency""",
        ),
    ]


def month_partitions(t0: datetime) -> list[tuple[date, date]]:
    """The months clicks fall in (three back from t0), as partition bounds."""
    first = (t0 - timedelta(days=DAYS + 1)).date().replace(day=1)
    bounds = []
    start = first
    while start <= t0.date():
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        bounds.append((start, end))
        start = end
    return bounds


async def foreign_keys(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """(table, name, definition) of every foreign key outside pgqueuer's tables."""
    rows = await conn.fetch(
        "SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS d "
        "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE c.contype = 'f' AND n.nspname = 'public' ORDER BY 1, 2"
    )
    return [(r["tbl"], r["conname"], r["d"]) for r in rows]


async def is_complete(conn: asyncpg.Connection, scale: float) -> bool:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", MARKER)
    if not exists:
        return False
    return bool(await conn.fetchval(f"SELECT count(*) FROM {MARKER} WHERE scale = $1", scale))


async def build(
    conn: asyncpg.Connection, volumes: Volumes, password_hash: str, log: bool = True
) -> dict[str, float]:
    """Fill a freshly migrated database. Foreign keys are dropped for the load and added back
    from their own definitions, then validated by PostgreSQL; checks, unique constraints and
    triggers (the ledger's balance check, append-only) stay on throughout."""
    t0 = datetime.now(UTC).replace(microsecond=0)
    timings: dict[str, float] = {}
    for statement in FUNCTIONS:
        await conn.execute(statement)
    for start, end in month_partitions(t0):
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS clicks_{start:%Y_%m} PARTITION OF clicks "
            f"FOR VALUES FROM ('{start}') TO ('{end}')"
        )
    fks = await foreign_keys(conn)
    for table, name, _ in fks:
        await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    await conn.execute("SET maintenance_work_mem = '256MB'")
    await conn.execute("SET work_mem = '64MB'")
    for table, statement in _steps(volumes, t0):
        started = time.perf_counter()
        if ":hash" in statement:
            statement = statement.replace(":hash", "$1")
            status = await conn.execute(statement, password_hash)
        else:
            status = await conn.execute(statement)
        timings[table] = time.perf_counter() - started
        if log:
            rows = status.rsplit(" ", 1)[-1] if status.split()[0] in ("INSERT", "UPDATE") else ""
            print(f"build {table:<28} {timings[table]:7.1f} s  {rows:>12} rows", flush=True)
    started = time.perf_counter()
    for table, name, definition in fks:
        await conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition} NOT VALID")
    for table, name, _ in fks:
        await conn.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
    timings["foreign keys"] = time.perf_counter() - started
    if log:
        print(f"build {'foreign keys (validated)':<28} {timings['foreign keys']:7.1f} s")
    started = time.perf_counter()
    await conn.execute("ANALYZE")
    timings["analyze"] = time.perf_counter() - started
    await conn.execute(
        f"CREATE TABLE {MARKER} (scale float8 NOT NULL, built_at timestamptz NOT NULL, "
        "seconds float8 NOT NULL)"
    )
    await conn.execute(
        f"INSERT INTO {MARKER} VALUES ($1, now(), $2)", volumes.scale, sum(timings.values())
    )
    if log:
        print(f"build {'analyze':<28} {timings['analyze']:7.1f} s")
    return timings


async def roll_up(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Fold every logged order into the dashboards' rollups, as the `insights.rollup` job
    does, in one run (one transaction); how many orders it took."""
    async with sessionmaker() as session:
        taken = await rollup.run(session, ZoneInfo(ZONE), batch=2**31 - 1)
        await session.commit()
    return taken or 0


async def compute_matching(settings: Settings) -> Result:
    """Run the nightly `matching.compute` job's work on the built database (settings name it),
    so the recommendation reads have rows: the last 30 local days before now."""
    engine = create_engine(settings.model_copy(update={"db_statement_timeout_ms": 0}))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await matching.compute_all(session, settings)
    finally:
        await engine.dispose()


async def has_matching(conn: asyncpg.Connection) -> bool | None:
    """Whether the job's rows are there; None: the database predates the matching tables."""
    if await conn.fetchval("SELECT to_regclass('shop_recommendations') IS NULL"):
        return None
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM shop_recommendations)"))
