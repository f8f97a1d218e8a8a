"""Routes of the buyer's mobile web storefront under /m/: HTML pages, left out of the API's
schema. Each hands the request to its page in pages.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from xiaopu.storefront import pages
from xiaopu.storefront.rendering import asset_response
from xiaopu.storefront.security import CsrfRefused

router = APIRouter(prefix="/m", include_in_schema=False)


async def _guarded(request: Request, page: Callable[[], Awaitable[Response]]) -> Response:
    """A form post whose CSRF token fails gets a page saying so, not problem+json."""
    try:
        return await page()
    except CsrfRefused:
        return pages.csrf_refused(request)


@router.get("/_/{name:path}", operation_id="storefront-asset")
async def asset(name: str, v: str | None = None) -> Response:
    return asset_response(name, v)


@router.get("/o/{order_id}", operation_id="storefront-order")
async def order(request: Request, order_id: str) -> Response:
    return await pages.order_page(request, order_id)


@router.post("/o/{order_id}/pay", operation_id="storefront-pay")
async def pay(request: Request, order_id: str) -> Response:
    return await _guarded(request, lambda: pages.pay(request, order_id))


@router.get("/o/{order_id}/sandbox", operation_id="storefront-sandbox")
async def sandbox(request: Request, order_id: str) -> Response:
    return await pages.sandbox_page(request, order_id)


@router.post("/o/{order_id}/sandbox", operation_id="storefront-sandbox_pay")
async def sandbox_pay(request: Request, order_id: str) -> Response:
    return await _guarded(request, lambda: pages.sandbox_pay(request, order_id))


@router.post("/o/{order_id}/returns", operation_id="storefront-request_return")
async def request_return(request: Request, order_id: str) -> Response:
    return await _guarded(request, lambda: pages.request_return(request, order_id))


@router.get("/{slug}", operation_id="storefront-shop")
async def shop(request: Request, slug: str) -> Response:
    return await pages.shop_page(request, slug)


@router.get("/{slug}/p/{product_id}", operation_id="storefront-product")
async def product(request: Request, slug: str, product_id: str) -> Response:
    return await pages.product_page(request, slug, product_id)


@router.get("/{slug}/checkout", operation_id="storefront-checkout")
async def checkout(request: Request, slug: str) -> Response:
    return await pages.checkout_page(request, slug)


@router.post("/{slug}/checkout", operation_id="storefront-place_order")
async def place_order(request: Request, slug: str) -> Response:
    return await _guarded(request, lambda: pages.place_order(request, slug))


@router.get("/{rest:path}", operation_id="storefront-not_found")
async def not_found(request: Request, rest: str) -> Response:
    return pages.not_found(request)
