"""Every answer is bounded: each list the API returns is a capped page or bounded by the domain
(named here with why), and an answer over `XIAOPU_MAX_RESPONSE_BYTES` is refused, not sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from xiaopu.observability import RESPONSES_REFUSED, RequestContextMiddleware

MAX_PAGE = 500

# Lists answered whole, and what bounds each. A new list in an answer fails the test below
# until it is paged (a `limit` of at most MAX_PAGE) or named here with its bound.
BOUNDED = {
    "/v1/catalogue/categories": "the operator's category tree (tens of rows)",
    "/v1/orders/{order_id}/returns": "an order's returns: at most one open per line, 50 lines",
    "/v1/shops/mine/wallet": "one balance per currency the shop earned in",
    "/v1/suppliers/{supplier_id}/balance": "one balance per currency the supplier sells in",
    "OverrideWallet.balances": "one balance per currency the organisation earned in",
    "OverrideStatement.totals": "one total per currency of the month's override lines",
    "CatalogueProduct.image_urls": "20 a product (ProductIn)",
    "PublicProduct.image_urls": "20 a product (ProductIn)",
    "ProductOut.image_urls": "20 a product (ProductIn)",
    "CatalogueProduct.variants": "200 a product (MAX_VARIANTS_PER_PRODUCT)",
    "PublicProduct.variants": "200 a product (MAX_VARIANTS_PER_PRODUCT)",
    "ProductOut.variants": "200 a product (MAX_VARIANTS_PER_PRODUCT)",
    "CommissionOut.history": "a line's few changes: accrued, released or forfeited, reversals",
    "OrderOut.supplier_orders": "one per supplier of the order's at most 50 lines",
    "SupplierOrderSummary.lines": "an order's at most 50 lines (max_order_lines)",
    "ShopOrderOut.lines": "an order's at most 50 lines (max_order_lines)",
    "SupplierOrderOut.lines": "an order's at most 50 lines (max_order_lines)",
    "LinkStats.days": "one per day asked for, at most 90",
    "Statement.totals": "one per currency",
    "ShopDashboard.days": "one per day of the range, at most 93 (insights.service.MAX_DAYS)",
    "SupplierDashboard.days": "one per day of the range, at most 93",
    "PlatformDashboard.days": "one per day of the range, at most 93",
    "ShopFigures.money": "one per currency",
    "ShopDay.money": "one per currency",
    "ShopRow.money": "one per currency",
    "SupplierFigures.money": "one per currency",
    "SupplierDay.money": "one per currency",
    "ProductRow.money": "one per currency",
    "ShopSelling.money": "one per currency",
    "PlatformFigures.money": "one per currency",
    "PlatformDay.money": "one per currency",
    "ApiKeyOut.scopes": "the scopes there are",
    "EndpointOut.event_types": "the event types there are",
    "RecommendedProduct.reasons": "one per factor of the score: seven (matching/service.py)",
    "RecommendedShopOut.reasons": "one per factor of the score: four (matching/service.py)",
    "CohortDays.days": "one per day of the range, at most 93 (organisations.service.MAX_DAYS)",
    "CohortDay.money": "one per currency",
    "CohortShop.money": "one per currency",
    "BriefOut.selling_points": "10 a campaign (campaigns/schemas.py Brief)",
    "BriefOut.images": "9 a campaign (campaigns/schemas.py Brief)",
    "CampaignOut.items": "50 a campaign (campaigns/schemas.py MAX_ITEMS)",
    "ShopCampaignOut.items": "50 a campaign (campaigns/schemas.py MAX_ITEMS)",
    "CampaignOut.budgets": "one per currency, at most 4 (campaigns/schemas.py MAX_BUDGETS)",
    "ResultsOut.budgets": "one per currency, at most 4 (campaigns/schemas.py MAX_BUDGETS)",
    "ResultsOut.by_shop": "the first 500 shops by GMV (campaigns/service.py LEADERBOARD_MAX)",
    "ResultsOut.by_product": "one per product and currency of the campaign's at most 50 items",
}


def _arrays(
    schemas: dict[str, Any], schema: dict[str, Any], where: str, seen: frozenset[str]
) -> set[str]:
    """Where the schema holds a list: `Model.field`, or the operation's path for a bare list."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return set()
        return _arrays(schemas, schemas[name], name, seen | {name})
    found: set[str] = set()
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, ()):
            found |= _arrays(schemas, sub, where, seen)
    if schema.get("type") == "array":
        found.add(where)
        found |= _arrays(schemas, schema.get("items", {}), where, seen)
    model = where.split(".", 1)[0]
    for field, sub in schema.get("properties", {}).items():
        found |= _arrays(schemas, sub, f"{model}.{field}", seen)
    return found


def _spec(project_root: Path) -> dict[str, Any]:
    # The committed document, which test_openapi holds equal to the app's.
    spec: dict[str, Any] = json.loads((project_root / "openapi" / "openapi.json").read_text())
    return spec


def test_every_list_an_answer_holds_is_paged_or_bounded(project_root: Path) -> None:
    spec = _spec(project_root)
    schemas = spec["components"]["schemas"]
    unbounded = []
    for path, operations in spec["paths"].items():
        operation = operations.get("get")
        if operation is None:
            continue
        content = operation["responses"].get("200", {}).get("content", {})
        if "application/json" not in content:
            continue
        limit = next((p for p in operation.get("parameters", ()) if p["name"] == "limit"), None)
        paged = limit is not None and limit["schema"].get("maximum", 10**9) <= MAX_PAGE
        for where in _arrays(schemas, content["application/json"]["schema"], path, frozenset()):
            if where in BOUNDED:
                continue
            # A page's own list (`items`, a statement's `lines`) is what `limit` caps.
            if paged and where.split(".")[-1] in ("items", "lines"):
                continue
            unbounded.append(f"{path}: {where}")
    assert unbounded == [], "page these lists, or name their bound in BOUNDED"


def test_the_bounds_named_are_still_there(project_root: Path) -> None:
    # An entry of BOUNDED that no answer holds any more is stale: it would excuse a new list.
    spec = _spec(project_root)
    schemas = spec["components"]["schemas"]
    found: set[str] = set()
    for path, operations in spec["paths"].items():
        content = operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
        if "application/json" in content:
            found |= _arrays(schemas, content["application/json"]["schema"], path, frozenset())
    assert set(BOUNDED) - found == set()


def _capped(most: int) -> Starlette:
    async def whole(request: Request) -> Response:
        return JSONResponse({"data": "x" * int(request.query_params["size"])})

    async def streamed(request: Request) -> Response:
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(4):
                yield b"y" * most

        return StreamingResponse(chunks(), media_type="text/csv")

    app = Starlette(routes=[Route("/whole", whole), Route("/streamed", streamed)])
    app.add_middleware(RequestContextMiddleware, max_body_bytes=1024, max_response_bytes=most)
    return app


@pytest.fixture
async def capped() -> Any:
    transport = httpx.ASGITransport(app=_capped(65_536))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_an_answer_over_the_cap_is_refused_and_counted(capped: httpx.AsyncClient) -> None:
    before = RESPONSES_REFUSED.labels("/whole")._value.get()
    small = await capped.get("/whole", params={"size": 60_000})
    assert small.status_code == 200
    assert len(small.content) < 65_536

    big = await capped.get("/whole", params={"size": 70_000})
    assert big.status_code == 500
    assert big.headers["content-type"] == "application/problem+json"
    assert big.json()["code"] == "response_too_large"
    assert "x" * 100 not in big.text  # none of the oversized body got out
    assert big.headers["X-Request-ID"]
    assert RESPONSES_REFUSED.labels("/whole")._value.get() == before + 1


async def test_a_streamed_answer_is_not_capped(capped: httpx.AsyncClient) -> None:
    streamed = await capped.get("/streamed")
    assert streamed.status_code == 200
    assert len(streamed.content) == 4 * 65_536
