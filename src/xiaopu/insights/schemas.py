"""Dashboard answers: figures per local day, link, product, shop and variant."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import Field

from xiaopu.kit.schema import ResponseModel

CONVERSION = "Orders per 10,000 unique visitors (basis points); null without visitors."
RETURN_RATE = "Units given back per 10,000 units sold (basis points); null without sales."


class Earnings(ResponseModel):
    """The shop's commission and markup of the orders counted, by the lines' status now."""

    pending_minor: int = Field(description="Accrued, waiting for the return window to close.")
    held_minor: int = Field(description="Held for review (self-purchase).")
    available_minor: int = Field(description="Released to the wallet, not yet withdrawn.")
    paid_minor: int = Field(description="Withdrawn and paid out.")
    forfeited_minor: int = Field(description="Not earned (a refused hold or policy).")
    reversed_minor: int = Field(description="Taken back by refunds.")


class ShopMoney(ResponseModel):
    currency: str
    gmv_minor: int = Field(description="What buyers paid for the goods (markup included).")
    refunds_minor: int = Field(description="Money refunded to buyers (shipping included).")
    earnings: Earnings


class ShopFigures(ResponseModel):
    clicks: int
    unique_visitors: int = Field(description="Visitors per link and day, added up.")
    orders: int = Field(description="Orders paid.")
    completed_orders: int = Field(description="Orders paid that became completed sales.")
    conversion_bps: int | None = Field(description=CONVERSION)
    money: list[ShopMoney] = Field(description="One per currency sold in.")


class ShopDay(ShopFigures):
    day: date


class Funnel(ResponseModel):
    """From a click to a completed sale, over the range."""

    clicks: int
    unique_visitors: int
    orders: int
    completed_orders: int
    visitor_rate_bps: int | None = Field(description="Unique visitors per 10,000 clicks.")
    order_rate_bps: int | None = Field(description=CONVERSION)
    completion_rate_bps: int | None = Field(description="Completed per 10,000 orders.")


class ShopDashboard(ResponseModel):
    since: date = Field(description="First local day, inclusive.")
    until: date = Field(description="Last local day, inclusive.")
    time_zone: str
    totals: ShopFigures
    funnel: Funnel
    days: list[ShopDay] = Field(description="Every day of the range, oldest first.")


class SalesMoney(ResponseModel):
    currency: str
    gmv_minor: int
    earnings_minor: int = Field(description="The shop's earnings that stand (not reversed).")


class ShopRow(ResponseModel):
    """One link's or product's figures over the range."""

    link_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    title: str | None = Field(default=None, description="The product's, or the link's label.")
    clicks: int
    unique_visitors: int
    orders: int = Field(description="Orders paid (an order with two products counts for each).")
    units: int
    refunded_units: int
    conversion_bps: int | None = Field(description=CONVERSION)
    money: list[SalesMoney]


class ShopRows(ResponseModel):
    since: date
    until: date
    items: list[ShopRow] = Field(description="The top rows by `sort`, at most `limit`.")


class SupplierMoney(ResponseModel):
    currency: str
    gmv_minor: int = Field(description="What buyers paid for the goods (markup included).")
    sales_minor: int = Field(description="The same goods at your price.")
    refunded_minor: int = Field(description="Units given back, at the price paid.")
    platform_fee_minor: int


class SupplierFigures(ResponseModel):
    orders: int = Field(description="Supplier orders paid.")
    completed_orders: int
    units: int
    refunded_units: int
    return_rate_bps: int | None = Field(description=RETURN_RATE)
    money: list[SupplierMoney]


class SupplierDay(SupplierFigures):
    day: date


class SupplierDashboard(ResponseModel):
    since: date
    until: date
    time_zone: str
    totals: SupplierFigures
    days: list[SupplierDay] = Field(description="Every day of the range, oldest first.")


class ProductRow(ResponseModel):
    product_id: uuid.UUID
    title: str
    orders: int = Field(description="Orders paid with the product in them.")
    units: int
    refunded_units: int
    return_rate_bps: int | None = Field(description=RETURN_RATE)
    shops_carrying: int = Field(description="Shops that carry the product now.")
    shops_selling: int = Field(description="Shops that sold it in the range.")
    money: list[SupplierMoney]


class ProductRows(ResponseModel):
    since: date
    until: date
    items: list[ProductRow] = Field(description="The top products by `sort`, at most `limit`.")


class ShopSelling(ResponseModel):
    shop_id: uuid.UUID
    name: str
    slug: str
    orders: int
    units: int
    refunded_units: int
    money: list[SupplierMoney]


class ShopsSelling(ResponseModel):
    since: date
    until: date
    product_id: uuid.UUID
    items: list[ShopSelling] = Field(description="The shops that sold most units, at most `limit`.")


class StockCover(ResponseModel):
    variant_id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    stock: int
    units_sold: int = Field(description="Units sold (paid, less those given back) in the window.")
    per_day: float = Field(description="units_sold ÷ the window's days.")
    days_of_cover: float | None = Field(
        description="stock ÷ per_day: days until stock runs out at that pace; null if none sold."
    )


class StockCoverPage(ResponseModel):
    window_days: int
    items: list[StockCover]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class PlatformMoney(ResponseModel):
    currency: str
    gmv_minor: int
    refunds_minor: int
    platform_fee_minor: int
    refund_rate_bps: int | None = Field(description="Money refunded per 10,000 of GMV.")


class PlatformFigures(ResponseModel):
    new_shops: int
    new_suppliers: int
    active_shops: int = Field(
        description="Shops with a paid order (in the range: per day, summed)."
    )
    active_suppliers: int = Field(description="Suppliers with a paid order (likewise).")
    clicks: int
    unique_visitors: int
    orders: int
    completed_orders: int
    conversion_bps: int | None = Field(description=CONVERSION)
    money: list[PlatformMoney]


class PlatformDay(PlatformFigures):
    day: date


class PlatformDashboard(ResponseModel):
    since: date
    until: date
    time_zone: str
    totals: PlatformFigures
    funnel: Funnel
    days: list[PlatformDay]
