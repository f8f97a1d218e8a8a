"""Routes for the dashboards of shopkeepers, suppliers and operators (JSON, or CSV tables)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from xiaopu.auth.auth import CurrentOperator, CurrentPerson
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.insights import service
from xiaopu.insights.auth import DashboardReader
from xiaopu.insights.schemas import (
    PlatformDashboard,
    ProductRows,
    ShopDashboard,
    ShopRows,
    ShopsSelling,
    StockCoverPage,
    SupplierDashboard,
)
from xiaopu.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT
from xiaopu.shops import service as shops

router = APIRouter(prefix="/v1/shops/mine/dashboard", tags=["dashboards"])
supplier_router = APIRouter(prefix="/v1/suppliers/{supplier_id}/dashboard", tags=["dashboards"])
operator_router = APIRouter(prefix="/v1/operator/dashboard", tags=["operator"])

Since = Annotated[
    date | None,
    Query(description="First local day (platform time zone), inclusive; default 29 days back."),
]
Until = Annotated[date | None, Query(description="Last local day, inclusive; default today.")]
Format = Annotated[
    Literal["json", "csv"],
    Query(alias="format", description="csv: the table, one row per day (or item) and currency."),
]
Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description="Most items (JSON; CSV has them all).")
]
CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


def _answer(model: BaseModel, rows: Sequence[BaseModel], as_csv: bool, name: str) -> Response:
    if as_csv:
        return Response(
            service.as_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(model.model_dump_json(), media_type="application/json")


@router.get(
    "", response_model=ShopDashboard, responses=CSV_ANSWER, operation_id="dashboards-get_shop"
)
async def get_shop_dashboard(
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    since: Since = None,
    until: Until = None,
    table_format: Format = "json",
) -> Response:
    """Your shop's clicks, unique visitors, orders, conversion, GMV, refunds and earnings by
    status, per local day and in total, with the funnel from click to completed sale. Orders
    and everything about them count on the day they were paid."""
    shop = await shops.shop_of(session, person.account_id)
    days = service.day_range(settings.zone, since, until)
    board = await service.shop_dashboard(session, shop.id, settings.zone, days)
    return _answer(board, board.days, table_format == "csv", f"shop-{days.since}-{days.until}")


@router.get(
    "/links", response_model=ShopRows, responses=CSV_ANSWER, operation_id="dashboards-shop_links"
)
async def get_shop_links(
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    since: Since = None,
    until: Until = None,
    sort: service.RowSort = "clicks",
    limit: Limit = DEFAULT_LIMIT,
    table_format: Format = "json",
) -> Response:
    """Your links' figures over the range, the top ones by `sort` (sales through no link, such
    as the shop page, show as a row without `link_id`)."""
    shop = await shops.shop_of(session, person.account_id)
    days = service.day_range(settings.zone, since, until)
    as_csv = table_format == "csv"
    rows = await service.shop_rows(
        session, shop.id, days, by_product=False, sort=sort, limit=None if as_csv else limit
    )
    return _answer(rows, rows.items, as_csv, f"shop-links-{days.since}-{days.until}")


@router.get(
    "/products",
    response_model=ShopRows,
    responses=CSV_ANSWER,
    operation_id="dashboards-shop_products",
)
async def get_shop_products(
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    since: Since = None,
    until: Until = None,
    sort: service.RowSort = "units",
    limit: Limit = DEFAULT_LIMIT,
    table_format: Format = "json",
) -> Response:
    """Your products' figures over the range (clicks of their product links), the top ones
    by `sort`."""
    shop = await shops.shop_of(session, person.account_id)
    days = service.day_range(settings.zone, since, until)
    as_csv = table_format == "csv"
    rows = await service.shop_rows(
        session, shop.id, days, by_product=True, sort=sort, limit=None if as_csv else limit
    )
    return _answer(rows, rows.items, as_csv, f"shop-products-{days.since}-{days.until}")


@supplier_router.get(
    "",
    response_model=SupplierDashboard,
    responses=CSV_ANSWER,
    operation_id="dashboards-get_supplier",
)
async def get_supplier_dashboard(
    supplier_id: uuid.UUID,
    caller: DashboardReader,
    session: DbSession,
    settings: AppSettings,
    since: Since = None,
    until: Until = None,
    table_format: Format = "json",
) -> Response:
    """Your supplier orders, units, GMV, sales at your price, refunds, return rate and platform
    fees, per local day of payment and in total."""
    days = service.day_range(settings.zone, since, until)
    board = await service.supplier_dashboard(session, caller.supplier_id, settings.zone, days)
    return _answer(board, board.days, table_format == "csv", f"supplier-{days.since}-{days.until}")


@supplier_router.get(
    "/products",
    response_model=ProductRows,
    responses=CSV_ANSWER,
    operation_id="dashboards-supplier_products",
)
async def get_supplier_products(
    supplier_id: uuid.UUID,
    caller: DashboardReader,
    session: DbSession,
    settings: AppSettings,
    since: Since = None,
    until: Until = None,
    sort: service.ProductSort = "units",
    limit: Limit = DEFAULT_LIMIT,
    table_format: Format = "json",
) -> Response:
    """Your products that sold in the range: units, GMV, refunds and return rate, how many
    shops carry each and how many sold it; the top ones by `sort`."""
    days = service.day_range(settings.zone, since, until)
    as_csv = table_format == "csv"
    rows = await service.product_rows(
        session, caller.supplier_id, days, sort=sort, limit=None if as_csv else limit
    )
    return _answer(rows, rows.items, as_csv, f"supplier-products-{days.since}-{days.until}")


@supplier_router.get(
    "/products/{product_id}/shops",
    response_model=ShopsSelling,
    responses=CSV_ANSWER,
    operation_id="dashboards-product_shops",
)
async def get_product_shops(
    supplier_id: uuid.UUID,
    product_id: uuid.UUID,
    caller: DashboardReader,
    session: DbSession,
    settings: AppSettings,
    since: Since = None,
    until: Until = None,
    limit: Limit = DEFAULT_LIMIT,
    table_format: Format = "json",
) -> Response:
    """The shops that sold most units of one of your products in the range."""
    days = service.day_range(settings.zone, since, until)
    as_csv = table_format == "csv"
    rows = await service.shops_selling(
        session, caller.supplier_id, product_id, days, limit=None if as_csv else limit
    )
    return _answer(rows, rows.items, as_csv, f"product-shops-{days.since}-{days.until}")


@supplier_router.get("/stock", operation_id="dashboards-stock_cover")
async def get_stock_cover(
    supplier_id: uuid.UUID,
    caller: DashboardReader,
    session: DbSession,
    settings: AppSettings,
    window: Annotated[
        int, Query(ge=1, le=90, description="Local days of sales the pace is taken over.")
    ] = 28,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> StockCoverPage:
    """Each variant's stock and days of cover at its pace of sales, in SKU order."""
    return await service.stock_cover(
        session, caller.supplier_id, settings.zone, window, cursor, limit
    )


@operator_router.get(
    "",
    response_model=PlatformDashboard,
    responses=CSV_ANSWER,
    operation_id="operator-get_dashboard",
)
async def get_platform_dashboard(
    operator: CurrentOperator,
    session: DbSession,
    settings: AppSettings,
    since: Since = None,
    until: Until = None,
    table_format: Format = "json",
) -> Response:
    """The platform's GMV, fees, refunds and refund rate, orders, new and active shops and
    suppliers, and the funnel from click to completed sale, per local day and in total."""
    days = service.day_range(settings.zone, since, until)
    board = await service.platform_dashboard(session, settings.zone, days)
    return _answer(board, board.days, table_format == "csv", f"platform-{days.since}-{days.until}")
