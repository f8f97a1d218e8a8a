"""The `matching.compute` job's set-based SQL: both recommendation tables rewritten in one
transaction from the window's orders and clicks (formula.py says what each number means).

Scratch aggregates are temporary tables dropped at commit; readers see the previous night's
rows until this transaction commits, then the new ones, never a mix. A transaction-scoped
advisory lock makes a second run (the CLI beside the schedule) wait for the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.matching import formula as f

# pg_advisory_xact_lock's key for this job: "matching" in ASCII.
LOCK_KEY = 0x6D61746368696E67


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime  # UTC instant of the first local day's midnight
    end: datetime  # UTC instant of the local midnight that ends it (exclusive)
    recent: datetime  # start of the last RECENT_DAYS local days
    days: int


@dataclass(frozen=True, slots=True)
class Result:
    window: Window
    shops: int
    products: int
    recommendations: int
    recommended_shops: int


def window_before(now: datetime, zone: ZoneInfo, days: int = f.WINDOW_DAYS) -> Window:
    """The `days` whole local days before the one `now` falls in."""
    today = now.astimezone(zone).date()

    def midnight(offset: int) -> datetime:
        return datetime.combine(today - timedelta(days=offset), time(0), zone).astimezone(UTC)

    return Window(midnight(days), midnight(0), midnight(min(days, f.RECENT_DAYS)), days)


_SCRATCH = [
    (
        "m_sales",
        # Units, returned units and orders of each product in each shop, paid in the window
        # and not cancelled.
        """SELECT so.shop_id, ol.product_id, sum(ol.quantity)::bigint AS units,
            sum(ol.returned_quantity)::bigint AS returned,
            count(DISTINCT ol.order_id)::bigint AS orders
        FROM supplier_orders so JOIN order_lines ol ON ol.supplier_order_id = so.id
        WHERE so.paid_at >= :start AND so.paid_at < :end
            AND so.status IN ('paid', 'accepted', 'shipped', 'delivered', 'completed')
        GROUP BY so.shop_id, ol.product_id""",
    ),
    (
        "m_shop_orders",
        """SELECT shop_id, count(DISTINCT order_id)::bigint AS orders,
            count(DISTINCT order_id) FILTER (WHERE paid_at >= :recent)::bigint AS orders_7d,
            max(paid_at) AS last_order_at
        FROM supplier_orders
        WHERE paid_at >= :start AND paid_at < :end
            AND status IN ('paid', 'accepted', 'shipped', 'delivered', 'completed')
        GROUP BY shop_id""",
    ),
    (
        "m_clicks",
        # Counted clicks and unique visitors by (shop, product) (level 0), by shop (1) and by
        # product across shops (2), in one pass over the window's partitions.
        """SELECT shop_id, product_id, count(*)::bigint AS clicks,
            count(DISTINCT visitor_id)::bigint AS visitors,
            GROUPING(shop_id, product_id) AS level
        FROM clicks
        WHERE created_at >= :start AND created_at < :end AND NOT is_repeat
        GROUP BY GROUPING SETS ((shop_id, product_id), (shop_id), (product_id))""",
    ),
    (
        "m_prior",
        # The platform's conversion and return rate, which products' own are smoothed towards.
        """SELECT CASE WHEN v.visitors > 0 THEN least(1, s.orders::numeric / v.visitors)
                       ELSE 0 END AS conversion,
            CASE WHEN s.units > 0 THEN s.returned::numeric / s.units ELSE 0 END
                AS return_rate
        FROM (SELECT coalesce(sum(orders), 0) AS orders, coalesce(sum(units), 0) AS units,
                     coalesce(sum(returned), 0) AS returned FROM m_sales) s,
            (SELECT coalesce(sum(visitors), 0) AS visitors FROM m_clicks
             WHERE level = 2 AND product_id IS NOT NULL) v""",
    ),
    (
        "m_product",
        # What may be recommended: active, in stock, from an active supplier.
        """WITH stock AS (
            SELECT product_id, sum(stock)::bigint AS stock FROM variants
            GROUP BY product_id HAVING sum(stock) > 0
        ), sold AS (
            SELECT product_id, sum(units) AS units, sum(returned) AS returned,
                sum(orders) AS orders FROM m_sales GROUP BY product_id
        )
        SELECT p.id, p.category_id,
            width_bucket(p.min_price_minor, CAST(:band_upper AS bigint[])) AS band,
            p.max_commission_bps AS commission_bps, st.stock,
            coalesce(v.visitors, 0) AS visitors, coalesce(sold.orders, 0) AS orders,
            coalesce(sold.units, 0) AS units, coalesce(sold.returned, 0) AS returned,
            least(10000, round(10000 * (coalesce(sold.orders, 0)
                + :prior_visitors * pr.conversion)
                / (coalesce(v.visitors, 0) + :prior_visitors)))::int AS conversion_bps,
            least(10000, round(10000 * (coalesce(sold.returned, 0)
                + :prior_units * pr.return_rate)
                / (coalesce(sold.units, 0) + :prior_units)))::int AS return_rate_bps
        FROM products p
        JOIN suppliers s ON s.id = p.supplier_id AND s.status = 'active'
        JOIN stock st ON st.product_id = p.id
        CROSS JOIN m_prior pr
        LEFT JOIN sold ON sold.product_id = p.id
        LEFT JOIN m_clicks v ON v.level = 2 AND v.product_id = p.id
        WHERE p.status = 'active'""",
    ),
    (
        "m_cells",
        # Each shop's units and clicks by the category and price band of what they were for
        # (products off sale since count too: they tell what the shop's buyers like).
        """SELECT a.shop_id, p.category_id,
            width_bucket(p.min_price_minor, CAST(:band_upper AS bigint[])) AS band,
            sum(a.units)::bigint AS units, sum(a.clicks)::bigint AS clicks
        FROM (SELECT shop_id, product_id, units, 0::bigint AS clicks FROM m_sales
              UNION ALL
              SELECT shop_id, product_id, 0, clicks FROM m_clicks
              WHERE level = 0 AND product_id IS NOT NULL) a
        JOIN products p ON p.id = a.product_id
        GROUP BY 1, 2, 3""",
    ),
    (
        "m_shop",
        # Shops with activity: totals, segment (the category of most activity) and profile.
        """WITH act AS (
            SELECT shop_id, sum(:w * units + clicks) AS activity FROM m_cells GROUP BY shop_id
        ), seg AS (
            SELECT DISTINCT ON (shop_id) shop_id, category_id FROM (
                SELECT shop_id, category_id, sum(:w * units + clicks) AS a FROM m_cells
                GROUP BY 1, 2) x
            ORDER BY shop_id, a DESC, category_id
        ), ret AS (
            SELECT shop_id, sum(units) AS units, sum(returned) AS returned FROM m_sales
            GROUP BY shop_id
        )
        SELECT act.shop_id, act.activity, seg.category_id AS segment,
            coalesce(v.visitors, 0) AS visitors, coalesce(o.orders, 0) AS orders,
            coalesce(o.orders_7d, 0) AS orders_7d, o.last_order_at,
            coalesce(ret.units, 0) AS units, coalesce(ret.returned, 0) AS returned,
            (CASE WHEN coalesce(v.visitors, 0) > 0
                  THEN least(10000, round(10000.0 * coalesce(o.orders, 0) / v.visitors))
                  ELSE 0 END)::int AS conversion_bps,
            (CASE WHEN coalesce(ret.units, 0) > 0
                  THEN round(10000.0 * ret.returned / ret.units) ELSE 0 END)::int
                AS return_rate_bps
        FROM act
        JOIN seg ON seg.shop_id = act.shop_id
        JOIN shops sh ON sh.id = act.shop_id
        LEFT JOIN m_clicks v ON v.level = 1 AND v.shop_id = act.shop_id
        LEFT JOIN m_shop_orders o ON o.shop_id = act.shop_id
        LEFT JOIN ret ON ret.shop_id = act.shop_id
        WHERE act.activity > 0""",
    ),
    (
        "m_cat_share",
        # Every active shop's smoothed share of activity in every category:
        # (its activity there + PRIOR × the platform's share) / (its activity + PRIOR).
        """WITH cat AS (
            SELECT c.category_id, sum(:w * c.units + c.clicks) AS activity FROM m_cells c
            JOIN m_shop s ON s.shop_id = c.shop_id GROUP BY c.category_id
        ), cats AS (
            SELECT k.category_id, coalesce(cat.activity, 0) AS activity
            FROM (SELECT category_id FROM cat UNION SELECT category_id FROM m_product) k
            LEFT JOIN cat USING (category_id)
        ), mine AS (
            SELECT shop_id, category_id, sum(units) AS units, sum(clicks) AS clicks,
                sum(:w * units + clicks) AS activity FROM m_cells GROUP BY 1, 2
        )
        SELECT s.shop_id, c.category_id, coalesce(m.units, 0) AS units,
            coalesce(m.clicks, 0) AS clicks, coalesce(m.activity, 0) AS activity,
            round(10000 * (coalesce(m.activity, 0)
                + :prior_activity * c.activity::numeric / t.activity)
                / (s.activity + :prior_activity))::int AS share_bps
        FROM m_shop s CROSS JOIN cats c
        CROSS JOIN (SELECT sum(activity) AS activity FROM m_shop) t
        LEFT JOIN mine m ON m.shop_id = s.shop_id AND m.category_id = c.category_id""",
    ),
    (
        "m_band_share",
        """WITH band AS (
            SELECT c.band, sum(:w * c.units + c.clicks) AS activity FROM m_cells c
            JOIN m_shop s ON s.shop_id = c.shop_id GROUP BY c.band
        ), mine AS (
            SELECT shop_id, band, sum(units) AS units, sum(clicks) AS clicks,
                sum(:w * units + clicks) AS activity FROM m_cells GROUP BY 1, 2
        )
        SELECT s.shop_id, b.band, coalesce(m.units, 0) AS units,
            coalesce(m.clicks, 0) AS clicks,
            round(10000 * (coalesce(m.activity, 0)
                + :prior_activity * coalesce(band.activity, 0)::numeric / t.activity)
                / (s.activity + :prior_activity))::int AS share_bps
        FROM m_shop s CROSS JOIN generate_series(0, :last_band) AS b(band)
        CROSS JOIN (SELECT sum(activity) AS activity FROM m_shop) t
        LEFT JOIN band ON band.band = b.band
        LEFT JOIN mine m ON m.shop_id = s.shop_id AND m.band = b.band""",
    ),
    (
        "m_cell_top",
        """SELECT id AS product_id, category_id, band FROM (
            SELECT id, category_id, band, row_number() OVER (
                PARTITION BY category_id, band
                ORDER BY conversion_bps::bigint * (10000 - return_rate_bps)
                    * (10000 + commission_bps) DESC, id) AS n
            FROM m_product) x
        WHERE n <= :per_cell""",
    ),
    (
        "m_peer",
        # Co-purchase: how many shops of each segment sold each product in the window.
        """SELECT s.segment, ms.product_id, count(*)::int AS sellers
        FROM m_sales ms JOIN m_shop s USING (shop_id)
        GROUP BY 1, 2""",
    ),
    (
        "m_segment",
        "SELECT segment, count(*)::int AS shops FROM m_shop GROUP BY segment",
    ),
    (
        "m_peer_top",
        """SELECT segment, product_id FROM (
            SELECT pe.segment, pe.product_id, row_number() OVER (
                PARTITION BY pe.segment ORDER BY pe.sellers DESC, pe.product_id) AS n
            FROM m_peer pe JOIN m_product p ON p.id = pe.product_id) x
        WHERE n <= :peer_candidates""",
    ),
]

_RECOMMENDATIONS = """
INSERT INTO shop_recommendations (shop_id, rank, product_id, score, category_id,
    category_units, category_clicks, category_share_bps, price_band, band_units, band_clicks,
    band_share_bps, segment_category_id, peer_shops, segment_shops, peer_share_bps, visitors,
    orders, conversion_bps, units, returned_units, return_rate_bps, commission_bps, stock,
    window_days, computed_at)
WITH cats AS (
    SELECT shop_id, category_id FROM (
        SELECT shop_id, category_id, row_number() OVER (
            PARTITION BY shop_id ORDER BY share_bps DESC, category_id) AS n
        FROM m_cat_share) x
    WHERE n <= :candidate_categories
), bands AS (
    SELECT shop_id, band FROM (
        SELECT shop_id, band, row_number() OVER (
            PARTITION BY shop_id ORDER BY share_bps DESC, band) AS n
        FROM m_band_share) x
    WHERE n <= :candidate_bands
), candidates AS (
    SELECT c.shop_id, t.product_id FROM cats c
    JOIN bands b ON b.shop_id = c.shop_id
    JOIN m_cell_top t ON t.category_id = c.category_id AND t.band = b.band
    UNION
    SELECT s.shop_id, pt.product_id FROM m_shop s JOIN m_peer_top pt ON pt.segment = s.segment
), scored AS (
    SELECT k.shop_id, p.id AS product_id, p.category_id, p.band, p.commission_bps, p.stock,
        p.visitors, p.orders, p.conversion_bps, p.units, p.returned, p.return_rate_bps,
        cs.units AS cat_units, cs.clicks AS cat_clicks, cs.share_bps AS cat_bps,
        bs.units AS band_units, bs.clicks AS band_clicks, bs.share_bps AS band_bps,
        s.segment, g.shops - 1 AS segment_shops,
        -- Other shops of the segment: the shop's own past sales of it are not a peer's.
        coalesce(pe.sellers, 0) - (own.shop_id IS NOT NULL)::int AS peer_shops
    FROM candidates k
    JOIN m_product p ON p.id = k.product_id
    JOIN m_shop s ON s.shop_id = k.shop_id
    JOIN m_segment g ON g.segment = s.segment
    JOIN m_cat_share cs ON cs.shop_id = k.shop_id AND cs.category_id = p.category_id
    JOIN m_band_share bs ON bs.shop_id = k.shop_id AND bs.band = p.band
    LEFT JOIN m_peer pe ON pe.segment = s.segment AND pe.product_id = p.id
    LEFT JOIN m_sales own ON own.shop_id = k.shop_id AND own.product_id = p.id
    WHERE NOT EXISTS (
        SELECT 1 FROM shop_products sp
        WHERE sp.shop_id = k.shop_id AND sp.product_id = k.product_id)
), shared AS (
    SELECT *, (CASE WHEN segment_shops > 0
                    THEN round(10000.0 * peer_shops / segment_shops) ELSE 0 END)::int
            AS peer_bps
    FROM scored
), final AS (
    SELECT *, div(cat_bps::numeric * band_bps * conversion_bps * (10000 - return_rate_bps)
                  * (10000 + commission_bps) * (10000 + peer_bps), 10000000000000000)::bigint
            AS score
    FROM shared
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY shop_id ORDER BY score DESC, product_id) AS rank
    FROM final
    -- A factor of 0 (a category or band nobody showed interest in) is no recommendation.
    WHERE score > 0
)
SELECT shop_id, rank, product_id, score, category_id, cat_units, cat_clicks, cat_bps, band,
    band_units, band_clicks, band_bps, segment, peer_shops, segment_shops, peer_bps, visitors,
    orders, conversion_bps, units, returned, return_rate_bps, commission_bps, stock, :days,
    :now
FROM ranked WHERE rank <= :per_shop
"""

_RECOMMENDED_SHOPS = """
INSERT INTO recommended_shops (category_id, price_band, rank, shop_id, score, category_units,
    category_clicks, category_share_bps, band_share_bps, activity, visitors, orders, units,
    returned_units, conversion_bps, return_rate_bps, orders_7d, last_order_at, window_days,
    computed_at)
WITH scored AS (
    SELECT cs.category_id, bs.band, s.shop_id, cs.units AS cat_units, cs.clicks AS cat_clicks,
        cs.share_bps AS cat_bps, bs.share_bps AS band_bps, s.activity, s.visitors, s.orders,
        s.units, s.returned, s.conversion_bps, s.return_rate_bps, s.orders_7d,
        s.last_order_at,
        div(s.activity::numeric * cs.share_bps * bs.share_bps * (10000 - s.return_rate_bps),
            100000000)::bigint AS score
    FROM m_cat_share cs
    JOIN m_shop s ON s.shop_id = cs.shop_id
    JOIN m_band_share bs ON bs.shop_id = cs.shop_id
    -- Only shops whose buyers showed interest in the category are candidates for it.
    WHERE cs.activity > 0
), ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY category_id, band ORDER BY score DESC, shop_id) AS rank
    FROM scored
    WHERE score > 0
)
SELECT category_id, band, rank, shop_id, score, cat_units, cat_clicks, cat_bps, band_bps,
    activity, visitors, orders, units, returned, conversion_bps, return_rate_bps, orders_7d,
    last_order_at, :days, :now
FROM ranked WHERE rank <= :shops_per_cell
"""


# The formula's constants, sent as parameters of the statements that use them.
CONSTANTS: dict[str, object] = {
    "w": f.ORDER_WEIGHT,
    "prior_activity": f.PRIOR_ACTIVITY,
    "prior_visitors": f.PRIOR_VISITORS,
    "prior_units": f.PRIOR_UNITS,
    "band_upper": list(f.BAND_UPPER_MINOR),
    "last_band": f.BANDS - 1,
    "per_cell": f.CANDIDATES_PER_CELL,
    "peer_candidates": f.PEER_CANDIDATES,
    "candidate_categories": f.CANDIDATE_CATEGORIES,
    "candidate_bands": f.CANDIDATE_BANDS,
    "per_shop": f.PER_SHOP,
    "shops_per_cell": f.SHOPS_PER_CELL,
}
_NAME = re.compile(r"(?<!:):([a-z_0-9]+)")


def _used(sql: str, values: dict[str, object]) -> dict[str, object]:
    names = set(_NAME.findall(sql))
    return {k: v for k, v in values.items() if k in names}


async def run(
    session: AsyncSession, zone: ZoneInfo, now: datetime, *, days: int = f.WINDOW_DAYS
) -> Result:
    """Rewrite both recommendation tables from the `days` local days before `now`'s, in the
    session's transaction (the caller commits)."""
    window = window_before(now, zone, days)
    values = {
        **CONSTANTS,
        "start": window.start,
        "end": window.end,
        "recent": window.recent,
        "days": days,
        "now": now,
    }
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    # A nightly batch, not a request: the request sessions' statement timeout does not apply.
    await session.execute(text("SET LOCAL statement_timeout = 0"))
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    for name, select in _SCRATCH:
        # Names from the list above, never from input.
        await session.execute(text(f"DROP TABLE IF EXISTS pg_temp.{name}"))
        create = f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {select}"
        await session.execute(text(create), _used(select, values))
        await session.execute(text(f"ANALYZE {name}"))
    await session.execute(text("DELETE FROM shop_recommendations"))
    await session.execute(text("DELETE FROM recommended_shops"))
    recommendations = await session.execute(text(_RECOMMENDATIONS), _used(_RECOMMENDATIONS, values))
    recommended = await session.execute(text(_RECOMMENDED_SHOPS), _used(_RECOMMENDED_SHOPS, values))
    shops = await session.scalar(text("SELECT count(*) FROM m_shop"))
    products = await session.scalar(text("SELECT count(*) FROM m_product"))
    return Result(
        window,
        int(shops or 0),
        int(products or 0),
        int(getattr(recommendations, "rowcount", 0)),
        int(getattr(recommended, "rowcount", 0)),
    )
