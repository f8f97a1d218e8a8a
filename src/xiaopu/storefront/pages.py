"""The storefront's pages: each reads or acts through the domains' own services (the rules live
there, once) and renders a template; refusals become pages, not problem+json."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from xiaopu.campaigns import service as campaigns
from xiaopu.config import Environment, Settings
from xiaopu.db import unit_of_work
from xiaopu.errors import AppError, InvalidCursor, NotFound
from xiaopu.idempotency.service import (
    Idempotency,
    IdempotencyKeyReused,
    Replay,
    check_key,
    set_principal,
)
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import DEFAULT_LIMIT, PageParams
from xiaopu.links import service as links
from xiaopu.models import OrderStatus, ReturnStatus, SupplierOrderStatus
from xiaopu.orders import payments, placing, returns
from xiaopu.orders import service as orders
from xiaopu.orders.providers import ProviderUnavailable, SandboxProvider
from xiaopu.orders.schemas import (
    Address,
    CheckoutIn,
    CheckoutItem,
    OrderOut,
    ReturnOut,
    ReturnRequest,
)
from xiaopu.shops import service as shops
from xiaopu.shops.schemas import SLUG_PATTERN
from xiaopu.storefront.cache import TTL_SECONDS, PageCache
from xiaopu.storefront.fast import RenderedPages
from xiaopu.storefront.rendering import Page
from xiaopu.storefront.security import (
    ATTRIBUTION_COOKIE,
    CSRF_FIELD,
    ORDER_COOKIE,
    ORDER_COOKIE_DAYS,
    CsrfRefused,
    check_csrf,
    csrf_seed,
    csrf_token,
    secure,
    set_csrf_cookie,
    token_fingerprint,
)

log = structlog.get_logger(__name__)

_SLUG = re.compile(SLUG_PATTERN)
SHELF_PAGE = DEFAULT_LIMIT
# Pages whose content is the same for everyone may be kept briefly by the browser.
PUBLIC_MAX_AGE = 30
PUBLIC_CACHE = f"public, max-age={PUBLIC_MAX_AGE}"
ADDRESS_FIELDS = ("recipient", "phone", "province", "city", "district", "line1", "postal_code")
# Messages the order page shows after a redirect: named by a fixed key, never by request text.
NOTICES = {
    "busy": "pay.busy",
    "unavailable": "pay.unavailable",
    "failed": "order.payment_failed",
    "return_requested": "order.return_requested",
    "return_failed": "error.try_again",
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


def _cache(request: Request) -> PageCache:
    cache: PageCache | None = getattr(request.app.state, "storefront_cache", None)
    if cache is None:
        cache = request.app.state.storefront_cache = PageCache()
    return cache


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value or len(value) > 36:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(
        location,
        status_code=303,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _kept(
    request: Request, page: Page, response: Response, until: datetime | None = None
) -> Response:
    """Keep a page that is the same for everyone for the fast path (fast.py) to answer (not
    past `until`, when what it shows changes by itself)."""
    pages: RenderedPages | None = getattr(request.app.state, "storefront_pages", None)
    if pages is not None and response.status_code == 200 and not request.url.query:
        pages.keep(
            request.url.path,
            page.lang,
            list(response.raw_headers),
            bytes(response.body),
            until.timestamp() if until is not None else None,
        )
    return response


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign as a page shows it now: warming up (price and a countdown to the start) or
    live (price and the time left); `seconds` counts down to the start or the end."""

    showing: campaigns.Showing
    phase: campaigns.Phase
    seconds: int

    @property
    def live(self) -> bool:
        return self.phase is campaigns.Phase.live

    @property
    def selling(self) -> bool:
        """Live with units left: checkout charges the campaign price (while they last)."""
        return self.live and self.showing.units_left > 0

    def variant(self, variant_id: uuid.UUID) -> campaigns.ShownVariant | None:
        return self.showing.variant(variant_id)


def _campaign_view(showings: tuple[campaigns.Showing, ...], now: datetime) -> CampaignView | None:
    found = campaigns.showing_at(showings, now)
    if found is None:
        return None
    showing, phase = found
    to = showing.ends_at if phase is campaigns.Phase.live else showing.starts_at
    return CampaignView(showing, phase, max(int((to - now).total_seconds()), 0))


def _public_cache(now: datetime, until: datetime | None, showing: bool) -> str:
    """The browser's keep of a page that is the same for everyone. One showing a campaign is
    kept no longer than the server keeps its data (TTL_SECONDS), and no page past the next
    campaign time: a browser never shows a warm-up after the start or a campaign price after
    the end, and an early end (which no time foretells) shows within 3 × TTL_SECONDS (data
    cache, then the fast path's kept page, then the browser's)."""
    age = int(TTL_SECONDS) if showing else PUBLIC_MAX_AGE
    if until is not None:
        age = min(age, max(int((until - now).total_seconds()), 0))
    return f"public, max-age={age}"


def not_found(request: Request, slug: str | None = None) -> Response:
    page = Page(request, _settings(request))
    return page.render("not_found.html", status=404, slug=slug)


async def _read(request: Request, key: tuple[Any, ...], load: Any) -> Any:
    async def loaded() -> Any:
        async with _sessions(request)() as session:
            return await load(session)

    return await _cache(request).get(key, loaded)


# Shop and product ---------------------------------------------------------------------------


def _landing(request: Request, slug: str) -> Response:
    """A share link's redirect lands here with its attribution token: the token goes into a
    first-party cookie for the attribution window (sent with checkout from any page of the
    shop), and the buyer on to the clean URL, so a page they share on carries no token."""
    settings = _settings(request)
    product_id = _uuid(request.query_params.get("product"))
    target = f"/m/{slug}/p/{product_id}" if product_id else f"/m/{slug}"
    response = _redirect(target)
    token = request.query_params.get("xp_at", "")
    if token and len(token) <= 200:
        try:
            attribution, expired = links.check_attribution(settings, token)
        except AppError:
            expired = True  # forged or damaged: not kept
            attribution = None
        if attribution is not None and not expired:
            window = settings.attribution_window_days * 86400
            age = int((utcnow() - attribution.issued_at).total_seconds())
            response.set_cookie(
                ATTRIBUTION_COOKIE,
                token,
                max_age=max(window - age, 1),
                path=f"/m/{slug}",
                httponly=True,
                samesite="lax",
                secure=secure(settings),
            )
    return response


async def shop_page(request: Request, slug: str) -> Response:
    if not _SLUG.match(slug):
        return not_found(request)
    params = request.query_params
    if "xp_at" in params or "product" in params:
        return _landing(request, slug)
    query = (params.get("q") or "").strip()[:80] or None
    cursor = params.get("cursor") or None
    if cursor is not None and len(cursor) > 200:
        cursor = None
    page_params = PageParams(limit=SHELF_PAGE, cursor=cursor)

    async def load(session: AsyncSession) -> tuple[shops.Shelf, Any]:
        shelf = await shops.shelf(session, slug, query, page_params)
        shown = await campaigns.shown(session, slug, [p.id for p in shelf.products], utcnow())
        return shelf, shown

    try:
        shelf, shown = await _read(request, ("shelf", slug, query, cursor), load)
    except InvalidCursor:
        return not_found(request, slug)
    except NotFound:
        return not_found(request)
    more = None
    if shelf.next_cursor:
        more = f"/m/{slug}?" + urlencode(
            {k: v for k, v in (("q", query), ("cursor", shelf.next_cursor)) if v}
        )
    page = Page(request, _settings(request))
    now = utcnow()
    views = {pid: view for pid, s in shown.items() if (view := _campaign_view(s, now))}
    until = campaigns.next_change([s for found in shown.values() for s in found], now)
    return _kept(
        request,
        page,
        page.render(
            "shop.html",
            cache=_public_cache(now, until, bool(views)),
            slug=slug,
            shelf=shelf,
            query=query,
            more=more,
            first_page=cursor is None,
            campaigns=views,
        ),
        until,
    )


async def product_page(request: Request, slug: str, product_id: str) -> Response:
    pid = _uuid(product_id)
    if not _SLUG.match(slug) or pid is None:
        return not_found(request)

    async def load(session: AsyncSession) -> tuple[str, shops.ShelfProduct, Any]:
        shop_name, product = await shops.shelf_product(session, slug, pid)
        shown = await campaigns.shown(session, slug, [pid], utcnow())
        return shop_name, product, shown.get(pid, ())

    try:
        shop_name, product, shown = await _read(request, ("product", slug, pid), load)
    except NotFound:
        return not_found(request, slug)
    settings = _settings(request)
    page = Page(request, settings)
    url = f"{settings.public_base_url}/m/{slug}/p/{pid}"
    now = utcnow()
    campaign = _campaign_view(shown, now)
    until = campaigns.next_change(shown, now)
    # Sold out in stock, yet a live campaign's allocation (set aside from the stock) has units.
    buyable = {
        v.id
        for v in product.variants
        if v.stock > 0
        or (
            campaign is not None
            and campaign.live
            and (shown_variant := campaign.variant(v.id)) is not None
            and shown_variant.units_left > 0
        )
    }
    return _kept(
        request,
        page,
        page.render(
            "product.html",
            cache=_public_cache(now, until, campaign is not None),
            slug=slug,
            shop_name=shop_name,
            product=product,
            url=url,
            max_quantity=settings.max_line_quantity,
            campaign=campaign,
            buyable=buyable,
        ),
        until,
    )


# Checkout -----------------------------------------------------------------------------------


@dataclass
class CartForm:
    """A checkout's items as the page carries them (v: variant, n: units, pairwise)."""

    items: list[CheckoutItem] = field(default_factory=list)
    valid: bool = True

    @classmethod
    def parse(cls, variants: list[str], counts: list[str], settings: Settings) -> CartForm:
        if not variants or len(variants) != len(counts) or len(variants) > settings.max_order_lines:
            return cls(valid=False)
        merged: dict[uuid.UUID, int] = {}
        for raw_variant, raw_count in zip(variants, counts, strict=True):
            variant = _uuid(raw_variant)
            if variant is None or not raw_count.isdigit() or len(raw_count) > 6:
                return cls(valid=False)
            merged[variant] = merged.get(variant, 0) + int(raw_count)
        if any(not 1 <= n <= settings.max_line_quantity for n in merged.values()):
            return cls(valid=False)
        return cls([CheckoutItem(variant_id=v, quantity=n) for v, n in merged.items()])

    def pairs(self) -> list[tuple[str, int]]:
        return [(str(item.variant_id), item.quantity) for item in self.items]


def _quote_problem(error: AppError) -> str:
    if isinstance(error, orders.OutOfStock):
        return "error.out_of_stock"
    if isinstance(error, orders.ProductUnavailable | orders.NotInShop | orders.ShopUnavailable):
        return "error.unavailable"
    if isinstance(error, orders.LineProblem | orders.TooManyLines | orders.MixedCurrencies):
        return "error.cart_invalid"
    return "error.try_again"


async def _checkout_form(
    request: Request,
    slug: str,
    cart: CartForm,
    *,
    key: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    settings = _settings(request)
    page = Page(request, settings)
    try:
        shop = await _read(request, ("shop", slug), lambda s: shops.public_shop(s, slug))
    except NotFound:
        return not_found(request)
    quote = None
    if cart.valid and cart.items:
        try:
            async with _sessions(request)() as session:
                quote = await orders.quote(session, settings, slug, cart.items)
        except NotFound:
            return not_found(request, slug)
        except AppError as error:
            problem = problem or _quote_problem(error)
            status = 409 if status == 200 else status
    elif not cart.valid:
        problem = problem or "error.cart_invalid"
    seed, new_seed = csrf_seed(request)
    response = page.render(
        "checkout.html",
        status=status,
        slug=slug,
        shop_name=shop.name,
        quote=quote,
        cart=cart.pairs(),
        # One key per checkout page: a double tap or a reload of this page's POST places one order.
        key=key or secrets.token_urlsafe(18),
        csrf=csrf_token(settings, seed),
        csrf_field=CSRF_FIELD,
        values=values or {},
        errors=errors or {},
        problem=problem,
    )
    if new_seed:
        set_csrf_cookie(response, settings, seed)
    return response


async def checkout_page(request: Request, slug: str) -> Response:
    if not _SLUG.match(slug):
        return not_found(request)
    params = request.query_params
    cart = CartForm.parse(params.getlist("v"), params.getlist("n"), _settings(request))
    return await _checkout_form(request, slug, cart)


def _field_errors(error: ValidationError) -> dict[str, str]:
    found: dict[str, str] = {}
    for issue in error.errors(include_url=False):
        loc = [str(part) for part in issue["loc"]]
        name = loc[1] if loc[:1] == ["address"] and len(loc) > 1 else loc[0] if loc else ""
        if name in found:
            continue
        kind = issue["type"]
        if name == "phone" and kind not in ("missing", "string_too_short"):
            found[name] = "error.phone"
        elif kind in ("missing", "string_too_short") or (
            kind == "string_pattern_mismatch" and not str(issue.get("input") or "").strip()
        ):
            found[name] = "error.required"
        elif kind == "string_too_long":
            found[name] = "error.too_long"
        else:
            found[name] = "error.invalid"
    return found


async def _form(request: Request) -> dict[str, list[str]]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()  # kept by the request: the idempotency fingerprint reads it too
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=300)
    except (UnicodeDecodeError, ValueError):
        return {}


def _one(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


async def place_order(request: Request, slug: str) -> Response:
    if not _SLUG.match(slug):
        return not_found(request)
    settings = _settings(request)
    form = await _form(request)
    check_csrf(settings, request, _one(form, CSRF_FIELD))
    cart = CartForm.parse(form.get("v", []), form.get("n", []), settings)
    key = _one(form, "key")
    values = {name: _one(form, name).strip() for name in (*ADDRESS_FIELDS, "note")}
    if not cart.valid or not cart.items:
        return await _checkout_form(request, slug, cart, values=values, status=422)
    try:
        check_key(key)
    except AppError:
        return await _checkout_form(
            request, slug, cart, values=values, problem="error.try_again", status=422
        )
    address_fields = {name: values[name] or None for name in ADDRESS_FIELDS}
    address_fields = {k: v for k, v in address_fields.items() if v is not None}
    token = request.cookies.get(ATTRIBUTION_COOKIE)
    try:
        data = CheckoutIn(
            shop_slug=slug,
            items=cart.items,
            address=Address.model_validate(address_fields),
            attribution_token=token if token and len(token) <= 200 else None,
            note=values["note"] or None,
        )
        if data.attribution_token is not None:
            links.check_attribution(settings, data.attribution_token)
    except ValidationError as error:
        return await _checkout_form(
            request,
            slug,
            cart,
            key=key,
            values=values,
            errors=_field_errors(error),
            problem="checkout.fix",
            status=422,
        )
    except AppError:  # a forged attribution cookie: the order stands, unattributed
        data = CheckoutIn(
            shop_slug=slug,
            items=cart.items,
            address=Address.model_validate(address_fields),
            note=values["note"] or None,
        )
    # Guests' keys are scoped to their phone, as the API scopes them.
    set_principal(request, f"guest:{data.address.phone}")
    try:
        out, _ = await placing.place(request.app, settings, request, key, None, data)
        order_id, access_token = str(out.id), out.access_token
    except Replay as replay:
        # The same form sent again (a double tap, a reload of the POST): the first order.
        body = replay.body if isinstance(replay.body, dict) else {}
        if not (200 <= replay.status < 300 and "id" in body):
            return await _checkout_form(
                request, slug, cart, values=values, problem="error.try_again", status=409
            )
        order_id, access_token = str(body["id"]), body.get("access_token")
    except IdempotencyKeyReused:
        # This page placed an order already and the form was changed since: a new page.
        return await _checkout_form(
            request, slug, cart, values=values, problem="error.try_again", status=409
        )
    except NotFound:
        return not_found(request, slug)
    except AppError as error:
        return await _checkout_form(
            request, slug, cart, key=key, values=values, problem=_quote_problem(error), status=409
        )
    log.info("storefront_order_placed", order_id=order_id)
    response = _redirect(f"/m/o/{order_id}?" + urlencode({"shop": slug, "placed": "1"}))
    if access_token:
        _set_order_cookie(response, settings, order_id, access_token)
    return response


def _set_order_cookie(response: Response, settings: Settings, order_id: str, token: str) -> None:
    # Sent only to this order's pages: each order a cookie of its own.
    response.set_cookie(
        ORDER_COOKIE,
        token,
        max_age=ORDER_COOKIE_DAYS * 86400,
        path=f"/m/o/{order_id}",
        httponly=True,
        samesite="lax",
        secure=secure(settings),
    )


# Orders -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineView:
    line: Any
    returnable: int
    returns: list[ReturnOut]


def _line_views(order: OrderOut, rows: list[ReturnOut], now: datetime) -> dict[uuid.UUID, LineView]:
    open_states = (ReturnStatus.requested, ReturnStatus.approved)
    views = {}
    for part in order.supplier_orders:
        window_open = (
            part.status is SupplierOrderStatus.delivered
            and part.return_closes_at is not None
            and part.return_closes_at > now
        )
        for line in part.lines:
            mine = [r for r in rows if r.line_id == line.id]
            pending = sum(r.quantity for r in mine if r.status in open_states)
            left = line.quantity - line.returned_quantity - pending
            views[line.id] = LineView(line, left if window_open and left > 0 else 0, mine)
    return views


def _shop_param(request: Request) -> str | None:
    shop = request.query_params.get("shop")
    return shop if shop and _SLUG.match(shop) else None


async def order_page(request: Request, order_id: str) -> Response:
    oid = _uuid(order_id)
    if oid is None:
        return not_found(request)
    settings = _settings(request)
    link_token = request.query_params.get("t")
    if link_token:
        # The order's link, opened on another device: the token goes into this browser's
        # cookie, and out of the address bar (and of any log that records URLs).
        rest = {k: v for k, v in (("shop", _shop_param(request)),) if v}
        response = _redirect(f"/m/o/{oid}" + (f"?{urlencode(rest)}" if rest else ""))
        if len(link_token) <= 64:
            _set_order_cookie(response, settings, str(oid), link_token)
        return response
    token = request.cookies.get(ORDER_COOKIE)
    if not token:
        return not_found(request)
    try:
        async with unit_of_work(_sessions(request)) as session:
            order = await orders.get_for_buyer(session, oid, None, token)
            rows = await returns.list_for_buyer(session, oid, None, token)
    except NotFound:
        log.info("storefront_order_not_found", order_id=str(oid), token=token_fingerprint(token))
        return not_found(request)
    page = Page(request, settings)
    seed, new_seed = csrf_seed(request)
    notice = NOTICES.get(request.query_params.get("msg", ""))
    placed = request.query_params.get("placed") == "1"
    rendered = page.render(
        "order.html",
        order=order,
        lines=_line_views(order, rows, utcnow()),
        slug=_shop_param(request),
        placed=placed,
        order_link=f"{settings.public_base_url}/m/o/{oid}?t={token}" if placed else None,
        notice=notice,
        payable=order.status is OrderStatus.pending_payment,
        paid=order.status is OrderStatus.paid,
        csrf=csrf_token(settings, seed),
        csrf_field=CSRF_FIELD,
        return_key=secrets.token_urlsafe(18),
    )
    if new_seed:
        set_csrf_cookie(rendered, settings, seed)
    return rendered


def _back(oid: uuid.UUID, request: Request, notice: str | None = None) -> Response:
    params = {k: v for k, v in (("shop", _shop_param(request)), ("msg", notice)) if v}
    return _redirect(f"/m/o/{oid}" + (f"?{urlencode(params)}" if params else ""))


def _sandbox_on(settings: Settings) -> bool:
    return (
        settings.env is not Environment.production
        and settings.payment_provider == SandboxProvider.name
    )


async def pay(request: Request, order_id: str) -> Response:
    oid = _uuid(order_id)
    token = request.cookies.get(ORDER_COOKIE)
    if oid is None or not token:
        return not_found(request)
    settings = _settings(request)
    form = await _form(request)
    check_csrf(settings, request, _one(form, CSRF_FIELD))
    try:
        payment = await payments.open_payment(_sessions(request), settings, oid, None, token)
    except payments.OrderNotPayable:
        return _back(oid, request)
    except payments.PaymentOpening:
        return _back(oid, request, "busy")
    except ProviderUnavailable:
        return _back(oid, request, "unavailable")
    except NotFound:
        return not_found(request)
    if payment.provider == SandboxProvider.name:
        # The sandbox's own pay step is an API call; in the storefront it is a page of ours.
        shop = _shop_param(request)
        return _redirect(f"/m/o/{oid}/sandbox" + (f"?{urlencode({'shop': shop})}" if shop else ""))
    if payment.pay_url is None:
        return _back(oid, request, "unavailable")
    # The provider's page, reached by a link: a form's redirect to another origin would be
    # refused by the page's form-action policy.
    page = Page(request, settings)
    return page.render("handover.html", pay_url=payment.pay_url, order_id=oid)


async def sandbox_page(request: Request, order_id: str) -> Response:
    oid = _uuid(order_id)
    token = request.cookies.get(ORDER_COOKIE)
    settings = _settings(request)
    if oid is None or not token or not _sandbox_on(settings):
        return not_found(request)
    try:
        async with unit_of_work(_sessions(request)) as session:
            order = await orders.get_for_buyer(session, oid, None, token)
    except NotFound:
        return not_found(request)
    if order.status is not OrderStatus.pending_payment:
        return _back(oid, request)
    page = Page(request, settings)
    seed, new_seed = csrf_seed(request)
    response = page.render(
        "sandbox.html",
        order=order,
        slug=_shop_param(request),
        csrf=csrf_token(settings, seed),
        csrf_field=CSRF_FIELD,
    )
    if new_seed:
        set_csrf_cookie(response, settings, seed)
    return response


async def sandbox_pay(request: Request, order_id: str) -> Response:
    oid = _uuid(order_id)
    token = request.cookies.get(ORDER_COOKIE)
    settings = _settings(request)
    if oid is None or not token or not _sandbox_on(settings):
        return not_found(request)
    form = await _form(request)
    check_csrf(settings, request, _one(form, CSRF_FIELD))
    outcome = "failed" if _one(form, "outcome") == "failed" else "paid"
    try:
        async with unit_of_work(_sessions(request)) as session:
            order = await orders.get_for_buyer(session, oid, None, token)
            if order.payment is None:
                return _back(oid, request, "unavailable")
            # The sandbox signs the callback a provider would send, and our callback handler
            # applies it: the order is paid only once that has happened.
            await payments.sandbox_pay(session, settings, order.payment.provider_ref, outcome)
    except NotFound:
        return not_found(request)
    return _back(oid, request, "failed" if outcome == "failed" else None)


async def request_return(request: Request, order_id: str) -> Response:
    oid = _uuid(order_id)
    token = request.cookies.get(ORDER_COOKIE)
    if oid is None or not token:
        return not_found(request)
    settings = _settings(request)
    form = await _form(request)
    check_csrf(settings, request, _one(form, CSRF_FIELD))
    line_id = _uuid(_one(form, "line_id"))
    key = _one(form, "key")
    try:
        check_key(key)
        body = ReturnRequest.model_validate(
            {"line_id": line_id, "quantity": _one(form, "quantity"), "reason": _one(form, "reason")}
        )
    except (ValidationError, AppError):
        return _back(oid, request, "return_failed")
    set_principal(request, f"guest-order:{orders.hash_access_token(token).hex()}")
    try:
        async with unit_of_work(_sessions(request)) as session:
            idempotency = Idempotency(session, request, key)
            await idempotency.once(lambda: returns.request_return(session, oid, None, token, body))
    except Replay:
        pass  # sent twice: the first request stands
    except NotFound:
        return not_found(request)
    except AppError:
        return _back(oid, request, "return_failed")
    return _back(oid, request, "return_requested")


def csrf_refused(request: Request) -> Response:
    page = Page(request, _settings(request))
    return page.render("problem.html", status=403, message="error.csrf")


__all__ = ["CsrfRefused", "csrf_refused"]
