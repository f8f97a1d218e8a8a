"""create_app(): routers, middleware, error handlers and lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from xiaopu.audit.endpoints import operator_router as operator_audit_router
from xiaopu.auth.endpoints import router as auth_router
from xiaopu.catalogue.endpoints import browse_router as catalogue_browse_router
from xiaopu.catalogue.endpoints import router as catalogue_router
from xiaopu.commissions.endpoints import operator_router as operator_commissions_router
from xiaopu.commissions.endpoints import router as wallet_router
from xiaopu.commissions.endpoints import supplier_router as statements_router
from xiaopu.config import Settings, get_settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.errors import PROBLEM_JSON, PROBLEM_RESPONSES, install_error_handlers
from xiaopu.health.endpoints import router as health_router
from xiaopu.idempotency.service import Replay, replay_stored_response
from xiaopu.kit.ratelimit import Limiter
from xiaopu.links.clicks import ClickRecorder
from xiaopu.links.endpoints import router as links_router
from xiaopu.links.redirect import PREFIX, LinkCache, ShareLinks
from xiaopu.observability import RequestContextMiddleware, configure_logging
from xiaopu.orders import checkout_route
from xiaopu.orders.endpoints import operator_refunds_router
from xiaopu.orders.endpoints import operator_router as operator_returns_router
from xiaopu.orders.endpoints import payment_router as payments_router
from xiaopu.orders.endpoints import router as orders_router
from xiaopu.orders.endpoints import shop_router as shop_orders_router
from xiaopu.orders.endpoints import supplier_router as fulfilment_router
from xiaopu.payouts.endpoints import operator_router as operator_payouts_router
from xiaopu.payouts.endpoints import router as payouts_router
from xiaopu.settlements.endpoints import operator_router as operator_settlements_router
from xiaopu.settlements.endpoints import router as settlements_router
from xiaopu.shops.endpoints import router as shops_router
from xiaopu.suppliers.endpoints import operator_router as operator_suppliers_router
from xiaopu.suppliers.endpoints import router as suppliers_router
from xiaopu.webhooks.endpoints import router as webhooks_router

API_DESCRIPTION = """
Xiaopu is the backend of a social-sharing storefront: suppliers list products, shopkeepers
open shops in one call and share links, buyers order, and the platform settles the money.

Errors are `application/problem+json` with a stable `code`. Lists take `cursor` and `limit`.
"""


def _operation_id(route: APIRoute) -> str:
    """Stable `{tag}-{function}` ids, so generated clients keep their method names."""
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def _problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Error responses are documented as application/problem+json, as they are sent."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema


def create_app(
    settings: Settings | None = None,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> XiaopuApp:
    """Build the app. Tests pass a sessionmaker bound to their own connection."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: XiaopuApp) -> AsyncIterator[None]:
        engine = None
        if sessionmaker is None:
            engine = create_engine(settings)
            app.state.sessionmaker = create_sessionmaker(engine)
            _share_links(app)
        app.state.clicks.start()
        # Everything built so far lives as long as the process: take it out of the cyclic
        # collector's sight, so full collections stay short on the request path.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # Clicks still in memory are written before the database goes away.
            await app.state.clicks.stop()
            if engine is not None:
                await engine.dispose()

    app = XiaopuApp(
        title="Xiaopu",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        responses=PROBLEM_RESPONSES,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_media_type(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.limiter = Limiter(settings.rate_limit_storage_url)
    if sessionmaker is not None:
        app.state.sessionmaker = sessionmaker
        _share_links(app)

    install_error_handlers(app)
    app.add_exception_handler(Replay, replay_stored_response)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(health_router)
    # Routes are matched in order, and checkout is the busiest route after the share redirect
    # (which never reaches the router): it is tried first. No other router shares its prefix.
    app.include_router(orders_router)
    app.include_router(auth_router)
    app.include_router(suppliers_router)
    app.include_router(operator_suppliers_router)
    app.include_router(catalogue_router)
    app.include_router(catalogue_browse_router)
    app.include_router(shop_orders_router)
    app.include_router(wallet_router)
    app.include_router(statements_router)
    app.include_router(settlements_router)
    app.include_router(operator_settlements_router)
    app.include_router(operator_commissions_router)
    app.include_router(payouts_router)
    app.include_router(operator_payouts_router)
    app.include_router(shops_router)
    app.include_router(fulfilment_router)
    app.include_router(payments_router)
    app.include_router(operator_returns_router)
    app.include_router(operator_refunds_router)
    app.include_router(webhooks_router)
    app.include_router(links_router)
    app.include_router(operator_audit_router)
    if settings.checkout_fast_path:
        app.checkout = RequestContextMiddleware(
            checkout_route.CheckoutRoute(app, _route(orders_router, checkout_route.PATH, "POST")),
            max_body_bytes=settings.max_body_bytes,
        )
    return app


def _route(router: APIRouter, path: str, method: str) -> APIRoute:
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"{method} {path} is not a route")


def _share_links(app: XiaopuApp) -> None:
    settings: Settings = app.state.settings
    app.state.link_cache = LinkCache(app.state.sessionmaker, settings)
    app.state.clicks = ClickRecorder(app.state.sessionmaker, max_buffer=settings.click_buffer_max)
    app.share_links = ShareLinks(settings, app.state.link_cache, app.state.clicks)


class XiaopuApp(FastAPI):
    """FastAPI with the share-link redirect in front of everything else.

    /s/{code} is the hottest path of the product, so it is answered here, before Starlette's
    middleware stack, routing and dependency injection run at all. Checkout, the busiest write,
    is answered here too (see orders/checkout_route.py), in the request-context middleware.
    """

    share_links: ShareLinks | None = None
    checkout: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.share_links is not None
            and scope["type"] == "http"
            and scope["path"].startswith(PREFIX)
        ):
            await self.share_links.handle(scope, send)
            return
        if self.checkout is not None and checkout_route.handles(scope):
            await self.checkout(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
