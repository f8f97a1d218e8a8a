"""Dashboards of shopkeepers, suppliers and operators, composed from the daily rollups."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.errors import AppError, InvalidCursor, NotFound
from xiaopu.insights import repository
from xiaopu.insights.rollup import zone_name
from xiaopu.insights.schemas import (
    Earnings,
    Funnel,
    PlatformDashboard,
    PlatformDay,
    PlatformFigures,
    PlatformMoney,
    ProductRow,
    ProductRows,
    SalesMoney,
    ShopDashboard,
    ShopDay,
    ShopFigures,
    ShopMoney,
    ShopRow,
    ShopRows,
    ShopSelling,
    ShopsSelling,
    StockCover,
    StockCoverPage,
    SupplierDashboard,
    SupplierDay,
    SupplierFigures,
    SupplierMoney,
)
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import decode_cursor, encode_cursor
from xiaopu.models.insights import NO_LINK

MAX_DAYS = 93
DEFAULT_DAYS = 30

RowSort = Literal["clicks", "orders", "units"]
ProductSort = Literal["units", "orders", "refunded_units"]


class InvalidRange(AppError):
    status = 422
    code = "invalid_date_range"
    title = f"The range must end on or after its first day and span at most {MAX_DAYS} days"


class DashboardProductNotFound(NotFound):
    code = "product_not_found"
    title = "Product not found"


@dataclass(frozen=True, slots=True)
class Range:
    since: date
    until: date

    def days(self) -> list[date]:
        return [self.since + timedelta(days=n) for n in range((self.until - self.since).days + 1)]


def day_range(zone: tzinfo, since: date | None, until: date | None) -> Range:
    """The local days asked for: by default the last 30, today included."""
    today = utcnow().astimezone(zone).date()
    last = until or (today if since is None else min(today, since + timedelta(DEFAULT_DAYS - 1)))
    first = since or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first or (last - first).days >= MAX_DAYS:
        raise InvalidRange(f"{first} to {last}")
    return Range(first, last)


def _rate(part: int, whole: int) -> int | None:
    """part per 10,000 of whole, rounded down; None when there is no whole."""
    return None if whole <= 0 else part * 10_000 // whole


def _funnel(clicks: int, visitors: int, orders: int, completed: int) -> Funnel:
    return Funnel(
        clicks=clicks,
        unique_visitors=visitors,
        orders=orders,
        completed_orders=completed,
        visitor_rate_bps=_rate(visitors, clicks),
        order_rate_bps=_rate(orders, visitors),
        completion_rate_bps=_rate(completed, orders),
    )


# Shopkeepers ------------------------------------------------------------------------------------

_EARNING_FIELDS = ("pending", "held", "available", "paid", "forfeited", "reversed")


def _shop_figures(clicks: int, visitors: int, rows: Iterable[Any]) -> dict[str, Any]:
    money: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    orders = completed = 0
    for row in rows:
        orders += row.orders
        completed += row.completed_orders
        m = money[row.currency]
        m["gmv"] += row.gmv_minor
        m["refunds"] += row.refunds_minor
        for name in _EARNING_FIELDS:
            m[name] += getattr(row, f"earnings_{name}_minor")
    figures: dict[str, Any] = {
        "clicks": clicks,
        "unique_visitors": visitors,
        "orders": orders,
        "completed_orders": completed,
        "conversion_bps": _rate(orders, visitors),
        "money": [
            ShopMoney(
                currency=currency,
                gmv_minor=m["gmv"],
                refunds_minor=m["refunds"],
                earnings=Earnings(**{f"{n}_minor": m[n] for n in _EARNING_FIELDS}),
            )
            for currency, m in sorted(money.items())
        ],
    }
    return figures


async def shop_dashboard(
    session: AsyncSession, shop_id: uuid.UUID, zone: tzinfo, days: Range
) -> ShopDashboard:
    traffic = {t.day: t for t in await repository.shop_traffic(session, shop_id, *_ends(days))}
    sales: dict[date, list[Any]] = defaultdict(list)
    for row in await repository.shop_days(session, shop_id, *_ends(days)):
        sales[row.day].append(row)
    per_day = []
    for day in days.days():
        t = traffic.get(day)
        clicks, visitors = (t.clicks, t.unique_visitors) if t else (0, 0)
        per_day.append(ShopDay(day=day, **_shop_figures(clicks, visitors, sales.get(day, ()))))
    clicks = sum(d.clicks for d in per_day)
    visitors = sum(d.unique_visitors for d in per_day)
    totals = ShopFigures(
        **_shop_figures(clicks, visitors, [r for rows in sales.values() for r in rows])
    )
    return ShopDashboard(
        since=days.since,
        until=days.until,
        time_zone=zone_name(zone),
        totals=totals,
        funnel=_funnel(clicks, visitors, totals.orders, totals.completed_orders),
        days=per_day,
    )


def _ends(days: Range) -> tuple[date, date]:
    return days.since, days.until


async def shop_rows(
    session: AsyncSession,
    shop_id: uuid.UUID,
    days: Range,
    *,
    by_product: bool,
    sort: RowSort,
    limit: int | None,
) -> ShopRows:
    """A shop's links (or products) over the range, the top `limit` by `sort` (all: None),
    ranked in the database; the money of the rows shown is read for them alone."""
    ranked = await repository.shop_ranking(
        session, shop_id, *_ends(days), by_product=by_product, sort=sort, limit=limit
    )
    keys = [row[0] for row in ranked]
    money: dict[uuid.UUID, list[SalesMoney]] = defaultdict(list)
    for key, currency, gmv, earned in await repository.shop_money(
        session, shop_id, *_ends(days), by_product=by_product, keys=None if limit is None else keys
    ):
        money[key].append(
            SalesMoney(currency=currency, gmv_minor=int(gmv), earnings_minor=int(earned))
        )
    named = [k for k in keys if k != NO_LINK]
    if by_product:
        names: dict[uuid.UUID, str | None] = dict(await repository.titles(session, named))
    else:
        names = await repository.link_labels(session, shop_id, named)
    items = []
    for key, clicks, visitors, orders, units, refunded in ranked:
        ident: dict[str, Any] = (
            {"product_id": key} if by_product else {"link_id": None if key == NO_LINK else key}
        )
        items.append(
            ShopRow(
                **ident,
                title=names.get(key),
                clicks=int(clicks),
                unique_visitors=int(visitors),
                orders=int(orders),
                units=int(units),
                refunded_units=int(refunded),
                conversion_bps=_rate(int(orders), int(visitors)),
                money=sorted(money.get(key, []), key=lambda m: m.currency),
            )
        )
    return ShopRows(since=days.since, until=days.until, items=items)


# Suppliers --------------------------------------------------------------------------------------


def _supplier_money(currency: str, m: dict[str, int]) -> SupplierMoney:
    return SupplierMoney(
        currency=currency,
        gmv_minor=m["gmv"],
        sales_minor=m["sales"],
        refunded_minor=m["refunded"],
        platform_fee_minor=m["fee"],
    )


def _supplier_figures(rows: Iterable[Any]) -> dict[str, Any]:
    money: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        for name in ("orders", "completed_orders", "units", "refunded_units"):
            counts[name] += getattr(row, name)
        m = money[row.currency]
        m["gmv"] += row.gmv_minor
        m["sales"] += row.sales_minor
        m["refunded"] += row.refunded_minor
        m["fee"] += row.platform_fee_minor
    figures: dict[str, Any] = {
        "orders": counts["orders"],
        "completed_orders": counts["completed_orders"],
        "units": counts["units"],
        "refunded_units": counts["refunded_units"],
        "return_rate_bps": _rate(counts["refunded_units"], counts["units"]),
        "money": [_supplier_money(c, m) for c, m in sorted(money.items())],
    }
    return figures


async def supplier_dashboard(
    session: AsyncSession, supplier_id: uuid.UUID, zone: tzinfo, days: Range
) -> SupplierDashboard:
    rows = await repository.supplier_days(session, supplier_id, *_ends(days))
    by_day: dict[date, list[Any]] = defaultdict(list)
    for row in rows:
        by_day[row.day].append(row)
    per_day = [
        SupplierDay(day=day, **_supplier_figures(by_day.get(day, ()))) for day in days.days()
    ]
    return SupplierDashboard(
        since=days.since,
        until=days.until,
        time_zone=zone_name(zone),
        totals=SupplierFigures(**_supplier_figures(rows)),
        days=per_day,
    )


async def _money_of(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    days: Range,
    product_id: uuid.UUID | None,
    keys: list[uuid.UUID] | None,
) -> dict[uuid.UUID, list[SupplierMoney]]:
    """Money per key and currency, for the keys given."""
    money: dict[uuid.UUID, list[SupplierMoney]] = defaultdict(list)
    for key, currency, gmv, sales, refunded, fee in await repository.product_money(
        session, supplier_id, *_ends(days), product_id=product_id, keys=keys
    ):
        money[key].append(
            _supplier_money(
                currency,
                {"gmv": int(gmv), "sales": int(sales), "refunded": int(refunded), "fee": int(fee)},
            )
        )
    for rows in money.values():
        rows.sort(key=lambda m: m.currency)
    return money


async def product_rows(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    days: Range,
    *,
    sort: ProductSort,
    limit: int | None,
) -> ProductRows:
    """The supplier's products that sold in the range, top `limit` by `sort` (all: None)."""
    ranked = await repository.product_ranking(
        session, supplier_id, *_ends(days), product_id=None, sort=sort, limit=limit
    )
    keys = [row[0] for row in ranked]
    money = await _money_of(session, supplier_id, days, None, None if limit is None else keys)
    selling = await repository.shops_selling(session, keys, *_ends(days))
    names = await repository.titles(session, keys)
    carrying = await repository.shops_carrying(session, keys)
    return ProductRows(
        since=days.since,
        until=days.until,
        items=[
            ProductRow(
                product_id=key,
                title=names.get(key, ""),
                orders=int(orders),
                units=int(units),
                refunded_units=int(refunded),
                return_rate_bps=_rate(int(refunded), int(units)),
                shops_carrying=carrying.get(key, 0),
                shops_selling=selling.get(key, 0),
                money=money.get(key, []),
            )
            for key, orders, units, refunded in ranked
        ],
    )


async def shops_selling(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    product_id: uuid.UUID,
    days: Range,
    *,
    limit: int | None,
) -> ShopsSelling:
    """The shops that sold most units of the product in the range."""
    if not await repository.product_of_supplier(session, supplier_id, product_id):
        raise DashboardProductNotFound()
    ranked = await repository.product_ranking(
        session, supplier_id, *_ends(days), product_id=product_id, sort="units", limit=limit
    )
    keys = [row[0] for row in ranked]
    money = await _money_of(session, supplier_id, days, product_id, None if limit is None else keys)
    names = await repository.shop_names(session, keys)
    return ShopsSelling(
        since=days.since,
        until=days.until,
        product_id=product_id,
        items=[
            ShopSelling(
                shop_id=key,
                name=names.get(key, ("", ""))[0],
                slug=names.get(key, ("", ""))[1],
                orders=int(orders),
                units=int(units),
                refunded_units=int(refunded),
                money=money.get(key, []),
            )
            for key, orders, units, refunded in ranked
        ],
    )


async def stock_cover(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    zone: tzinfo,
    window: int,
    cursor: str | None,
    limit: int,
) -> StockCoverPage:
    """Each variant's stock beside its pace of sales over the last `window` local days (today
    included): how many days the stock lasts at that pace."""
    after = None
    if cursor is not None:
        values = decode_cursor(cursor)
        if len(values) != 1 or not isinstance(values[0], str):
            raise InvalidCursor()
        after = values[0]
    variants = await repository.variants_page(session, supplier_id, after, limit + 1)
    page = variants[:limit]
    today = utcnow().astimezone(zone).date()
    sold = await repository.variant_units(
        session, [v.id for v in page], today - timedelta(days=window - 1), today
    )
    items = []
    for v in page:
        units = sold.get(v.id, 0)
        per_day = units / window
        items.append(
            StockCover(
                variant_id=v.id,
                product_id=v.product_id,
                sku=v.sku,
                stock=v.stock,
                units_sold=units,
                per_day=round(per_day, 3),
                days_of_cover=round(v.stock / per_day, 1) if units > 0 else None,
            )
        )
    next_cursor = encode_cursor([page[-1].sku]) if len(variants) > limit else None
    return StockCoverPage(window_days=window, items=items, next_cursor=next_cursor)


# Operators --------------------------------------------------------------------------------------


def _platform_figures(counts: Iterable[Any], sales: Iterable[Any]) -> dict[str, Any]:
    c: dict[str, int] = defaultdict(int)
    for row in counts:
        for name in (
            "new_shops",
            "new_suppliers",
            "active_shops",
            "active_suppliers",
            "clicks",
            "unique_visitors",
        ):
            c[name] += getattr(row, name)
    money: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in sales:
        c["orders"] += row.orders
        c["completed_orders"] += row.completed_orders
        m = money[row.currency]
        m["gmv"] += row.gmv_minor
        m["refunds"] += row.refunds_minor
        m["fee"] += row.platform_fee_minor
    return {
        "new_shops": c["new_shops"],
        "new_suppliers": c["new_suppliers"],
        "active_shops": c["active_shops"],
        "active_suppliers": c["active_suppliers"],
        "clicks": c["clicks"],
        "unique_visitors": c["unique_visitors"],
        "orders": c["orders"],
        "completed_orders": c["completed_orders"],
        "conversion_bps": _rate(c["orders"], c["unique_visitors"]),
        "money": [
            PlatformMoney(
                currency=cur,
                gmv_minor=m["gmv"],
                refunds_minor=m["refunds"],
                platform_fee_minor=m["fee"],
                refund_rate_bps=_rate(m["refunds"], m["gmv"]),
            )
            for cur, m in sorted(money.items())
        ],
    }


async def platform_dashboard(session: AsyncSession, zone: tzinfo, days: Range) -> PlatformDashboard:
    counts, sales = await repository.platform_days(session, *_ends(days))
    counts_by: dict[date, list[Any]] = defaultdict(list)
    sales_by: dict[date, list[Any]] = defaultdict(list)
    for row in counts:
        counts_by[row.day].append(row)
    for s in sales:
        sales_by[s.day].append(s)
    per_day = [
        PlatformDay(day=day, **_platform_figures(counts_by.get(day, ()), sales_by.get(day, ())))
        for day in days.days()
    ]
    totals = PlatformFigures(**_platform_figures(counts, sales))
    return PlatformDashboard(
        since=days.since,
        until=days.until,
        time_zone=zone_name(zone),
        totals=totals,
        funnel=_funnel(
            totals.clicks, totals.unique_visitors, totals.orders, totals.completed_orders
        ),
        days=per_day,
    )


# CSV --------------------------------------------------------------------------------------------


def _flat(model: BaseModel) -> list[dict[str, Any]]:
    """A table row per currency of a model carrying `money` (one row if it has none), its
    nested money fields spelled out."""
    data = model.model_dump(mode="json")
    money = data.pop("money", None)
    if not money:
        return [data]
    rows = []
    for m in money:
        nested = m.pop("earnings", None) or {}
        rows.append({**data, **m, **{f"earnings_{k}": v for k, v in nested.items()}})
    return rows


def as_csv(models: Sequence[BaseModel]) -> str:
    rows = [row for model in models for row in _flat(model)]
    if not rows:
        return ""
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
