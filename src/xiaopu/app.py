"""create_app(): routers, middleware, error handlers and lifespan."""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from xiaopu.applications.endpoints import operator_router as operator_applications_router
from xiaopu.audit.endpoints import operator_router as operator_audit_router
from xiaopu.auth.endpoints import api_keys_router
from xiaopu.auth.endpoints import router as auth_router
from xiaopu.auth.revocations import SessionRevocations
from xiaopu.campaigns.endpoints import shop_router as campaigns_shop_router
from xiaopu.campaigns.endpoints import supplier_router as campaigns_supplier_router
from xiaopu.catalogue.endpoints import browse_router as catalogue_browse_router
from xiaopu.catalogue.endpoints import router as catalogue_router
from xiaopu.commissions.endpoints import operator_router as operator_commissions_router
from xiaopu.commissions.endpoints import router as wallet_router
from xiaopu.commissions.endpoints import supplier_router as statements_router
from xiaopu.config import Settings, get_settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.errors import PROBLEM_JSON, PROBLEM_RESPONSES, install_error_handlers
from xiaopu.health.endpoints import router as health_router
from xiaopu.idempotency.service import Replay, document_required_keys, replay_stored_response
from xiaopu.insights.endpoints import operator_router as operator_dashboards_router
from xiaopu.insights.endpoints import router as dashboards_router
from xiaopu.insights.endpoints import supplier_router as supplier_dashboards_router
from xiaopu.kit.metrics_http import MetricsServer
from xiaopu.kit.ratelimit import Limiter
from xiaopu.links.clicks import ClickRecorder
from xiaopu.links.endpoints import router as links_router
from xiaopu.links.redirect import PREFIX, LinkCache, ShareLinks
from xiaopu.matching.endpoints import shop_router as matching_shop_router
from xiaopu.matching.endpoints import supplier_router as matching_supplier_router
from xiaopu.observability import RequestContextMiddleware, configure_logging
from xiaopu.orders import checkout_route
from xiaopu.orders.endpoints import carrier_router as carriers_router
from xiaopu.orders.endpoints import operator_refunds_router
from xiaopu.orders.endpoints import operator_router as operator_returns_router
from xiaopu.orders.endpoints import payment_router as payments_router
from xiaopu.orders.endpoints import router as orders_router
from xiaopu.orders.endpoints import shop_router as shop_orders_router
from xiaopu.orders.endpoints import supplier_router as fulfilment_router
from xiaopu.organisations.endpoints import operator_router as operator_organisations_router
from xiaopu.organisations.endpoints import router as organisations_router
from xiaopu.organisations.endpoints import shop_router as organisations_shop_router
from xiaopu.payouts.endpoints import operator_router as operator_payouts_router
from xiaopu.payouts.endpoints import router as payouts_router
from xiaopu.settlements.endpoints import operator_router as operator_settlements_router
from xiaopu.settlements.endpoints import router as settlements_router
from xiaopu.shops.endpoints import router as shops_router
from xiaopu.storefront.cache import PageCache
from xiaopu.storefront.endpoints import router as storefront_router
from xiaopu.storefront.fast import PREFIX as STOREFRONT_PREFIX
from xiaopu.storefront.fast import RenderedPages
from xiaopu.suppliers.endpoints import operator_router as operator_suppliers_router
from xiaopu.suppliers.endpoints import router as suppliers_router
from xiaopu.webhooks.endpoints import router as webhooks_router

# Processes of one `xiaopu serve` that can each find a metrics port of their own.
METRICS_PORT_TRIES = 64

API_DESCRIPTION = """
Xiaopu is the backend of a social-sharing storefront: suppliers list products, shopkeepers
open shops in one call and share links, buyers order, and the platform settles the money.

Errors are `application/problem+json` with a stable `code`. Lists take `cursor` and `limit`.
"""


def _operation_id(route: APIRoute) -> str:
    """FastAPI asks for an id only of a route declared without `operation_id`: refused, so that
    every operation names its own id (`{tag}-{function}`, kept when the Python function is
    renamed or moved) and generated clients keep their method names."""
    raise TypeError(
        f"{sorted(route.methods or ())} {route.path} needs an explicit operation_id, "
        f'e.g. operation_id="{route.tags[0] if route.tags else "tag"}-{route.name}"'
    )


def _problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Error responses are documented as application/problem+json, as they are sent."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema


_SCHEMA_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")


def _generic_schema_names(schema: dict[str, Any]) -> dict[str, Any]:
    """Name a parametrized generic's schema as the model names itself (`ApiKeyPage`).

    pydantic names the schema of `Page[ApiKeyOut]` from its origin and arguments
    (`Page_ApiKeyOut_`) whatever `model_parametrized_name` says; that name is the schema's
    title, and becomes its name here, in the components and in every reference to them."""
    components: dict[str, Any] = schema.get("components", {}).get("schemas", {})
    renames = {
        name: component["title"]
        for name, component in components.items()
        if not _SCHEMA_NAME.fullmatch(name) and _SCHEMA_NAME.fullmatch(component.get("title", ""))
    }
    if not renames:
        return schema
    taken = set(components) - set(renames)
    for new in renames.values():
        if new in taken:
            raise ValueError(f"two schemas would be named {new}")
        taken.add(new)
    prefix = "#/components/schemas/"
    refs = {prefix + old: prefix + new for old, new in renames.items()}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: refs.get(v, v) if k == "$ref" and isinstance(v, str) else rewrite(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    rewritten: dict[str, Any] = rewrite(schema)
    rewritten["components"]["schemas"] = {
        renames.get(name, name): component
        for name, component in rewritten["components"]["schemas"].items()
    }
    return rewritten


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
            _sessions(app)
        app.state.clicks.start()
        await app.state.revocations.start()
        # Each process serves its own registry: with `serve --workers N` they take the ports
        # from metrics_port up, one each, and Prometheus scrapes every one of them.
        metrics = MetricsServer()
        if settings.metrics_port:
            await metrics.start(settings.host, settings.metrics_port, tries=METRICS_PORT_TRIES)
        # Everything built so far lives as long as the process: take it out of the cyclic
        # collector's sight, so full collections stay short on the request path.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # Clicks still in memory are written before the database goes away.
            await app.state.clicks.stop()
            await metrics.stop()
            await app.state.revocations.stop()
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
            schema = _generic_schema_names(_problem_media_type(FastAPI.openapi(app)))
            document_required_keys(schema, api_routes(app.routes))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.limiter = Limiter(settings.rate_limit_storage_url)
    if sessionmaker is not None:
        app.state.sessionmaker = sessionmaker
        _share_links(app)
        _sessions(app)

    install_error_handlers(app)
    app.add_exception_handler(Replay, replay_stored_response)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_response_bytes=settings.max_response_bytes,
    )
    app.include_router(health_router)
    # Routes are matched in order, and checkout is the busiest route after the share redirect
    # (which never reaches the router): it is tried first. No other router shares its prefix.
    app.include_router(orders_router)
    app.include_router(auth_router)
    app.include_router(api_keys_router)
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
    # Before shops_router, whose /v1/shops/{slug}/... would otherwise be tried first.
    app.include_router(dashboards_router)
    app.include_router(supplier_dashboards_router)
    app.include_router(operator_dashboards_router)
    app.include_router(matching_shop_router)
    app.include_router(campaigns_supplier_router)
    app.include_router(campaigns_shop_router)
    app.include_router(matching_supplier_router)
    app.include_router(organisations_shop_router)
    app.include_router(shops_router)
    app.include_router(organisations_router)
    app.include_router(operator_organisations_router)
    app.include_router(fulfilment_router)
    app.include_router(payments_router)
    app.include_router(carriers_router)
    app.include_router(operator_returns_router)
    app.include_router(operator_refunds_router)
    app.include_router(webhooks_router)
    app.include_router(operator_applications_router)
    app.include_router(links_router)
    app.include_router(operator_audit_router)
    # The buyers' web pages under /m/, where share links land (left out of the API schema).
    app.state.storefront_cache = PageCache()
    app.state.storefront_pages = app.storefront_pages = RenderedPages()
    app.include_router(storefront_router)
    if settings.checkout_fast_path:
        app.checkout = RequestContextMiddleware(
            checkout_route.CheckoutRoute(app, _route(orders_router, checkout_route.PATH, "POST")),
            max_body_bytes=settings.max_body_bytes,
            max_response_bytes=settings.max_response_bytes,
        )
    return app


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, those of included routers too (which FastAPI may keep behind a
    router of its own instead of copying them into the app's routes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        else:
            included = getattr(route, "original_router", None)
            if isinstance(included, APIRouter):
                yield from api_routes(included.routes)


def _route(router: APIRouter, path: str, method: str) -> APIRoute:
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"{method} {path} is not a route")


def _share_links(app: XiaopuApp) -> None:
    settings: Settings = app.state.settings
    app.state.link_cache = LinkCache(app.state.sessionmaker, settings)
    app.state.clicks = ClickRecorder(
        app.state.sessionmaker, max_buffer=settings.click_buffer_max, zone=settings.zone
    )
    app.share_links = ShareLinks(settings, app.state.link_cache, app.state.clicks)


def _sessions(app: XiaopuApp) -> None:
    app.state.revocations = SessionRevocations(app.state.sessionmaker, app.state.settings)


class XiaopuApp(FastAPI):
    """FastAPI with the share-link redirect in front of everything else.

    /s/{code} is the hottest path of the product, so it is answered here, before Starlette's
    middleware stack, routing and dependency injection run at all. Checkout, the busiest write,
    is answered here too (see orders/checkout_route.py), in the request-context middleware, and
    so are storefront pages already rendered for everyone (see storefront/fast.py).
    """

    share_links: ShareLinks | None = None
    checkout: ASGIApp | None = None
    storefront_pages: RenderedPages | None = None

    def include_router(self, router: APIRouter, *args: Any, **kwargs: Any) -> None:
        """Refuses a route without an explicit operation_id when it is included, not when
        FastAPI first builds it (which may be at its first request)."""
        for route in api_routes(router.routes):
            if route.operation_id is None:
                _operation_id(route)
        super().include_router(router, *args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.share_links is not None
            and scope["type"] == "http"
            and scope["path"].startswith(PREFIX)
        ):
            await self.share_links.handle(scope, send)
            return
        if (
            self.storefront_pages is not None
            and scope["type"] == "http"
            and scope["path"].startswith(STOREFRONT_PREFIX)
            and await self.storefront_pages.answer(scope, send)
        ):
            return
        if self.checkout is not None and checkout_route.handles(scope):
            await self.checkout(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
