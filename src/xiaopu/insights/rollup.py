"""The rollup: folds the orders named in `rollup_changes` into the daily rollups, set-based.

Each affected (shop, day) and (supplier, day) is recomputed whole from the orders, lines and
commission lines it covers, so a figure is always what the source rows say at the rollup's
moment (no increments to drift), and a change logged twice costs a recompute, not a wrong
count. A day is the local day (platform time zone) the order was paid on; everything about an
order (refunds, completion, earnings' status) counts on that day, so a day's row changes
as its orders go on, and a range's figures are those of the orders paid in it.
"""

from __future__ import annotations

from datetime import date, timedelta, tzinfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.clock import utcnow
from xiaopu.models.insights import NO_LINK

# One run at a time: two recomputing one key at once would both insert its rows.
_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('insights.rollup', 0))")

# The run's keys, in temporary tables kept by the connection (emptied at each commit, and at
# each run's start for a second run in one transaction).
_KEYS = [
    "CREATE TEMP TABLE IF NOT EXISTS rollup_orders (order_id uuid PRIMARY KEY) "
    "ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS rollup_shop_days (shop_id uuid, day date) "
    "ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS rollup_supplier_days (supplier_id uuid, day date) "
    "ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS rollup_days (day date PRIMARY KEY) ON COMMIT DELETE ROWS",
    "TRUNCATE rollup_orders, rollup_shop_days, rollup_supplier_days, rollup_days",
]

# The oldest logged changes, taken (their rows deleted with this transaction's commit: a failed
# run leaves them for the next). Rows other runs hold are skipped, and rows of transactions not
# yet committed are not seen at all: they are taken by a later run, after their change.
_TAKE = text(
    """
    WITH taken AS (
        DELETE FROM rollup_changes WHERE id IN (
            SELECT id FROM rollup_changes ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED)
        RETURNING order_id
    ), kept AS (
        INSERT INTO rollup_orders (order_id) SELECT DISTINCT order_id FROM taken RETURNING 1
    )
    SELECT count(*) FROM taken
    """
)

_LOCAL_DAY = "(o.paid_at AT TIME ZONE :zone)::date"
# An order paid within the key's local day, found through ix_orders_shop_paid (and the
# supplier orders' ix_supplier_orders_supplier_paid): a range, not a function of the column.
_WITHIN = (
    "{t}.paid_at >= (k.day::timestamp AT TIME ZONE :zone) "
    "AND {t}.paid_at < ((k.day + 1)::timestamp AT TIME ZONE :zone)"
)

# The f-strings below splice this module's own constant SQL fragments, never input.
_SHOP_DAYS = text(
    f"""
    INSERT INTO rollup_shop_days (shop_id, day)
    SELECT DISTINCT o.shop_id, {_LOCAL_DAY}
    FROM rollup_orders r JOIN orders o ON o.id = r.order_id
    WHERE o.paid_at IS NOT NULL
    """
)
_SUPPLIER_DAYS = text(
    f"""
    INSERT INTO rollup_supplier_days (supplier_id, day)
    SELECT DISTINCT so.supplier_id, {_LOCAL_DAY}
    FROM rollup_orders r JOIN orders o ON o.id = r.order_id
    JOIN supplier_orders so ON so.order_id = o.id
    WHERE o.paid_at IS NOT NULL
    """
)
_DAYS = text(
    """
    INSERT INTO rollup_days (day)
    SELECT day FROM rollup_shop_days UNION SELECT unnest(CAST(:recent AS date[]))
    """
)

# Per order line: its shop's earnings by the line's status, what refunds took back of them,
# and the platform's fee (every share is accrued minus reversed: what it stands at now).
_LINE_SHARES = """
    LEFT JOIN LATERAL (
        SELECT
            sum(c.accrued_minor - c.reversed_minor)
                FILTER (WHERE c.beneficiary = 'platform') AS fee,
            sum(c.accrued_minor - c.reversed_minor)
                FILTER (WHERE c.beneficiary = 'shop' AND c.status = 'pending') AS pending,
            sum(c.accrued_minor - c.reversed_minor)
                FILTER (WHERE c.beneficiary = 'shop' AND c.status = 'held') AS held,
            sum(c.accrued_minor - c.reversed_minor)
                FILTER (WHERE c.beneficiary = 'shop' AND c.status = 'available') AS available,
            sum(c.accrued_minor - c.reversed_minor)
                FILTER (WHERE c.beneficiary = 'shop' AND c.status = 'paid') AS paid,
            sum(c.accrued_minor - c.reversed_minor)
                FILTER (WHERE c.beneficiary = 'shop' AND c.status = 'forfeited') AS forfeited,
            sum(c.reversed_minor) FILTER (WHERE c.beneficiary = 'shop') AS reversed
        FROM commissions c
        WHERE c.supplier_order_id = l.supplier_order_id AND c.order_line_id = l.id
    ) c ON true
"""

_EARNINGS = (
    "earnings_pending_minor, earnings_held_minor, earnings_available_minor, "
    "earnings_paid_minor, earnings_forfeited_minor, earnings_reversed_minor"
)

_SALES = [
    text(
        "DELETE FROM sales_daily s USING rollup_shop_days k "
        "WHERE s.shop_id = k.shop_id AND s.day = k.day"
    ),
    text(
        f"""
        INSERT INTO sales_daily (shop_id, day, product_id, link_id, currency, supplier_id,
            orders, units, gmv_minor, sales_minor, refunded_units, refunded_minor,
            completed_units, platform_fee_minor, {_EARNINGS})
        SELECT k.shop_id, k.day, l.product_id, coalesce(o.link_id, :no_link), o.currency,
            so.supplier_id, count(DISTINCT o.id), sum(l.quantity),
            sum(l.base_minor + l.markup_minor), sum(l.base_minor), sum(l.returned_quantity),
            sum(l.returned_quantity * (l.unit_price_minor + l.unit_markup_minor)),
            coalesce(sum(l.quantity - l.returned_quantity)
                FILTER (WHERE so.status = 'completed'), 0),
            coalesce(sum(c.fee), 0), coalesce(sum(c.pending), 0), coalesce(sum(c.held), 0),
            coalesce(sum(c.available), 0), coalesce(sum(c.paid), 0),
            coalesce(sum(c.forfeited), 0), coalesce(sum(c.reversed), 0)
        FROM rollup_shop_days k
        JOIN orders o ON o.shop_id = k.shop_id AND {_WITHIN.format(t="o")}
        JOIN order_lines l ON l.order_id = o.id
        JOIN supplier_orders so ON so.id = l.supplier_order_id
        {_LINE_SHARES}
        GROUP BY k.shop_id, k.day, l.product_id, coalesce(o.link_id, :no_link), o.currency,
            so.supplier_id
        """
    ),
    text(
        "DELETE FROM shop_daily s USING rollup_shop_days k "
        "WHERE s.shop_id = k.shop_id AND s.day = k.day"
    ),
    text(
        f"""
        INSERT INTO shop_daily (shop_id, day, currency, orders, completed_orders, gmv_minor,
            refunds_minor, {_EARNINGS})
        SELECT o.shop_id, o.day, o.currency, o.orders, o.completed_orders, s.gmv_minor,
            o.refunds_minor, s.pending, s.held, s.available, s.paid, s.forfeited, s.reversed
        FROM (
            SELECT k.shop_id, k.day, o.currency, count(*) AS orders,
                count(*) FILTER (WHERE o.sale_counted_at IS NOT NULL) AS completed_orders,
                sum(o.refunded_minor) AS refunds_minor
            FROM rollup_shop_days k
            JOIN orders o ON o.shop_id = k.shop_id AND {_WITHIN.format(t="o")}
            GROUP BY k.shop_id, k.day, o.currency
        ) o JOIN (
            SELECT s.shop_id, s.day, s.currency, sum(s.gmv_minor) AS gmv_minor,
                sum(s.earnings_pending_minor) AS pending, sum(s.earnings_held_minor) AS held,
                sum(s.earnings_available_minor) AS available,
                sum(s.earnings_paid_minor) AS paid,
                sum(s.earnings_forfeited_minor) AS forfeited,
                sum(s.earnings_reversed_minor) AS reversed
            FROM rollup_shop_days k
            JOIN sales_daily s ON s.shop_id = k.shop_id AND s.day = k.day
            GROUP BY s.shop_id, s.day, s.currency
        ) s USING (shop_id, day, currency)
        """
    ),
    text(
        "DELETE FROM supplier_daily s USING rollup_supplier_days k "
        "WHERE s.supplier_id = k.supplier_id AND s.day = k.day"
    ),
    text(
        f"""
        INSERT INTO supplier_daily (supplier_id, day, currency, orders, completed_orders, units,
            gmv_minor, sales_minor, refunded_units, refunded_minor, platform_fee_minor)
        SELECT k.supplier_id, k.day, so.currency, count(DISTINCT so.id),
            count(DISTINCT so.id) FILTER (WHERE so.status = 'completed'), sum(l.quantity),
            sum(l.base_minor + l.markup_minor), sum(l.base_minor), sum(l.returned_quantity),
            sum(l.returned_quantity * (l.unit_price_minor + l.unit_markup_minor)),
            coalesce(sum(c.fee), 0)
        FROM rollup_supplier_days k
        JOIN supplier_orders so ON so.supplier_id = k.supplier_id AND {_WITHIN.format(t="so")}
        JOIN order_lines l ON l.supplier_order_id = so.id
        {_LINE_SHARES}
        GROUP BY k.supplier_id, k.day, so.currency
        """
    ),
    text(
        "DELETE FROM supplier_product_daily s USING rollup_supplier_days k "
        "WHERE s.supplier_id = k.supplier_id AND s.day = k.day"
    ),
    text(
        f"""
        INSERT INTO supplier_product_daily (supplier_id, day, product_id, currency, orders,
            units, refunded_units, gmv_minor, sales_minor, refunded_minor, platform_fee_minor)
        SELECT k.supplier_id, k.day, l.product_id, so.currency, count(DISTINCT so.order_id),
            sum(l.quantity), sum(l.returned_quantity), sum(l.base_minor + l.markup_minor),
            sum(l.base_minor),
            sum(l.returned_quantity * (l.unit_price_minor + l.unit_markup_minor)),
            coalesce(sum(c.fee), 0)
        FROM rollup_supplier_days k
        JOIN supplier_orders so ON so.supplier_id = k.supplier_id AND {_WITHIN.format(t="so")}
        JOIN order_lines l ON l.supplier_order_id = so.id
        {_LINE_SHARES}
        GROUP BY k.supplier_id, k.day, l.product_id, so.currency
        """
    ),
    text(
        "DELETE FROM variant_daily v USING rollup_supplier_days k "
        "WHERE v.supplier_id = k.supplier_id AND v.day = k.day"
    ),
    text(
        f"""
        INSERT INTO variant_daily (variant_id, day, supplier_id, units, refunded_units)
        SELECT l.variant_id, k.day, k.supplier_id, sum(l.quantity), sum(l.returned_quantity)
        FROM rollup_supplier_days k
        JOIN supplier_orders so ON so.supplier_id = k.supplier_id AND {_WITHIN.format(t="so")}
        JOIN order_lines l ON l.supplier_order_id = so.id
        GROUP BY l.variant_id, k.day, k.supplier_id
        """
    ),
]

# The platform's days: sums of the shops' and suppliers' rows of the day, and of its traffic,
# recomputed for every day a run touched and for today and yesterday (whose clicks go on).
_PLATFORM = [
    text("DELETE FROM platform_sales_daily p USING rollup_days d WHERE p.day = d.day"),
    text(
        """
        INSERT INTO platform_sales_daily (day, currency, orders, completed_orders, gmv_minor,
            refunds_minor, platform_fee_minor)
        SELECT s.day, s.currency, s.orders, s.completed_orders, s.gmv_minor, s.refunds_minor,
            coalesce(f.fee, 0)
        FROM (
            SELECT s.day, s.currency, sum(s.orders) AS orders,
                sum(s.completed_orders) AS completed_orders, sum(s.gmv_minor) AS gmv_minor,
                sum(s.refunds_minor) AS refunds_minor
            FROM rollup_days d JOIN shop_daily s ON s.day = d.day
            GROUP BY s.day, s.currency
        ) s LEFT JOIN (
            SELECT s.day, s.currency, sum(s.platform_fee_minor) AS fee
            FROM rollup_days d JOIN supplier_daily s ON s.day = d.day
            GROUP BY s.day, s.currency
        ) f USING (day, currency)
        """
    ),
    text("DELETE FROM platform_daily p USING rollup_days d WHERE p.day = d.day"),
    text(
        """
        INSERT INTO platform_daily (day, new_shops, new_suppliers, active_shops,
            active_suppliers, clicks, unique_visitors)
        SELECT d.day,
            (SELECT count(*) FROM shops
             WHERE created_at >= (d.day::timestamp AT TIME ZONE :zone)
               AND created_at < ((d.day + 1)::timestamp AT TIME ZONE :zone)),
            (SELECT count(*) FROM suppliers
             WHERE created_at >= (d.day::timestamp AT TIME ZONE :zone)
               AND created_at < ((d.day + 1)::timestamp AT TIME ZONE :zone)),
            (SELECT count(DISTINCT shop_id) FROM shop_daily WHERE day = d.day),
            (SELECT count(DISTINCT supplier_id) FROM supplier_daily WHERE day = d.day),
            coalesce((SELECT sum(clicks) FROM shop_daily_traffic WHERE day = d.day), 0),
            coalesce((SELECT sum(unique_visitors) FROM shop_daily_traffic WHERE day = d.day), 0)
        FROM rollup_days d
        """
    ),
]


def zone_name(zone: tzinfo) -> str:
    """The IANA name PostgreSQL converts with (the zone's key)."""
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else "UTC"


async def run(session: AsyncSession, zone: tzinfo, batch: int) -> int | None:
    """Fold up to `batch` logged changes into the rollups, with the platform's recent days;
    how many changes were taken (a full batch: more may wait), or None if another run holds
    the rollup."""
    if not await session.scalar(_LOCK):
        return None
    for ddl in _KEYS:
        await session.execute(text(ddl))
    name = zone_name(zone)
    taken = int(await session.scalar(_TAKE, {"batch": batch}) or 0)
    params = {"zone": name}
    await session.execute(_SHOP_DAYS, params)
    await session.execute(_SUPPLIER_DAYS, params)
    today = utcnow().astimezone(zone).date()
    recent: list[date] = [today - timedelta(days=1), today]
    await session.execute(_DAYS, {"recent": recent})
    for statement in _SALES:
        await session.execute(statement, {"zone": name, "no_link": NO_LINK})
    for statement in _PLATFORM:
        await session.execute(statement, params)
    return taken
