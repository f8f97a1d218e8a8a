"""GET /s/{code}: the hottest path of the product, kept off the ORM session and FastAPI's
dependency machinery. A person's browser gets a 302 carrying a signed attribution token; a
preview fetcher or a bot gets the Open Graph page; a HEAD gets the 302 and counts nothing."""

from __future__ import annotations

import asyncio
import html
import random
import secrets
import time
from dataclasses import replace

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Scope, Send
from uuid_utils import uuid7

from xiaopu.campaigns import service as campaigns
from xiaopu.config import Settings
from xiaopu.kit.clock import clock
from xiaopu.kit.lang import Lang, negotiate
from xiaopu.kit.money import display, major_units
from xiaopu.links import repository, tokens
from xiaopu.links.agents import AgentClass, classify_raw, visitor_hash
from xiaopu.links.clicks import ClickRecorder, target_ids
from xiaopu.links.repository import LinkTarget

log = structlog.get_logger(__name__)

PREFIX = "/s/"
_PREFIX_LENGTH = len(PREFIX)
VISITOR_COOKIE = "xp_vid"
VISITOR_COOKIE_PREFIX = b"xp_vid="
# A cached target is at most CACHE_TTL_SECONDS × 1.2 old (36 s; a lapsed entry answers only while
# its refresh runs). That bounds what the preview can miss of a campaign: a shop's sign-up or a
# supplier's early end. Its warm-up, start and end need no reload: the preview works them out
# from the cached times and the clock when it renders.
CACHE_TTL_SECONDS = 30.0
MISSING_TTL_SECONDS = 5.0
STALE_GRACE_SECONDS = 60.0
CACHE_MAX = 100_000
FAILURE_LOG_INTERVAL_SECONDS = 10.0
REDIRECTS = Counter("xiaopu_share_redirects_total", "Share link answers.", ["outcome"])
# Bound once: looking a label up on every request costs more than the increment.
# Each header costs the server's validation loop on every click, so only what matters: the
# location, no caching of a token-carrying answer anywhere, and the (empty) length.
_REDIRECT_HEADERS = (
    (b"cache-control", b"private, no-store"),
    (b"content-length", b"0"),
)
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
_NOT_PEOPLE = frozenset({AgentClass.preview, AgentClass.bot})


def _prepared(target: LinkTarget, settings: Settings) -> LinkTarget:
    """The target with what every redirect needs worked out once: the location around the
    token (slugs, UUIDs and base64url tokens are URL-safe as they are) and the ids as bytes."""
    marker = "\x00"
    location = settings.share_target_template.format(
        public_base_url=settings.public_base_url,
        shop_slug=target.shop_slug,
        product_id=target.product_id or "",
        token=marker,
    )
    head, _, tail = location.partition(marker)
    return replace(
        target,
        token_ids=target.link_id.bytes + target.shop_id.bytes,
        copy_ids=target_ids(target),
        location_head=head.encode(),
        location_tail=tail.encode(),
    )


class LinkCache:
    """code -> LinkTarget for a short while, so a busy link costs no database round trip.

    A lapsed entry goes on answering for a grace period while one background load refreshes
    it, and concurrent misses for one code share one load: when a busy link's entry lapses,
    its clicks neither wait for the database nor all query it at once.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._entries: dict[str, tuple[float, LinkTarget | None]] = {}
        self._loading: dict[str, asyncio.Task[LinkTarget | None]] = {}

    def fresh(self, code: str) -> tuple[float, LinkTarget | None] | None:
        """The cached entry, with no await: the redirect's fast path."""
        entry = self._entries.get(code)
        if entry is None:
            return None
        now = time.monotonic()
        if entry[0] > now:
            return entry
        if code not in self._loading:
            self._start_load(code)
        return entry if now - entry[0] < STALE_GRACE_SECONDS else None

    async def get(self, code: str) -> LinkTarget | None:
        entry = self.fresh(code)
        if entry is not None:
            return entry[1]
        task = self._loading.get(code) or self._start_load(code)
        # Shielded: one caller giving up must not cancel the load the others are waiting for.
        return await asyncio.shield(task)

    def _start_load(self, code: str) -> asyncio.Task[LinkTarget | None]:
        task = asyncio.create_task(self._load(code), name=f"share-link-load:{code}")
        self._loading[code] = task
        task.add_done_callback(lambda done: self._loaded(code, done))
        return task

    def _loaded(self, code: str, task: asyncio.Task[LinkTarget | None]) -> None:
        # Read first, so a failure nobody awaited (a background refresh) is still retrieved.
        error = None if task.cancelled() else task.exception()
        if self._loading.get(code) is not task:
            return  # invalidated meanwhile
        del self._loading[code]
        entry = self._entries.get(code)
        if error is not None and entry is not None:
            # A lapsed entry's refresh failed: keep answering from it and try again shortly.
            log.warning("share_link_refresh_failed", code=code, exc_info=error)
            self._entries[code] = (time.monotonic() + MISSING_TTL_SECONDS, entry[1])

    async def _load(self, code: str) -> LinkTarget | None:
        async with self._sessionmaker() as session:
            found = await repository.target(session, code)
            if found is not None and found.product_id is not None and not found.disabled:
                # A second round trip, on a load only (never on a click): the product's campaigns.
                shown = await campaigns.shown(
                    session, found.shop_slug, [found.product_id], clock.now()
                )
                found = replace(found, campaigns=shown.get(found.product_id, ()))
        if found is not None:
            found = _prepared(found, self._settings)
        if self._loading.get(code) is not asyncio.current_task():
            return found  # invalidated while loading: what was read may already be out of date
        if len(self._entries) >= CACHE_MAX:
            self._entries.clear()
        ttl = CACHE_TTL_SECONDS if found is not None else MISSING_TTL_SECONDS
        # Spread out: links cached together (at start, say) would all lapse, and reload, at once.
        ttl *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
        self._entries[code] = (time.monotonic() + ttl, found)
        return found

    def invalidate(self, code: str) -> None:
        self._entries.pop(code, None)
        self._loading.pop(code, None)


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


def _visitor_cookie(header: bytes) -> str | None:
    start = header.find(VISITOR_COOKIE_PREFIX)
    while start != -1:
        if start == 0 or header[start - 1] in b"; ":
            end = header.find(b";", start)
            value = header[start + len(VISITOR_COOKIE_PREFIX) : end if end != -1 else None]
            if 16 <= len(value) <= 44 and value.isalnum():
                return value.decode()
            return None
        start = header.find(VISITOR_COOKIE_PREFIX, start + 1)
    return None


class ShareLinks:
    """Answers /s/{code} at the ASGI level (the app routes those paths here first)."""

    def __init__(self, settings: Settings, cache: LinkCache, recorder: ClickRecorder) -> None:
        self.settings = settings
        self.cache = cache
        self.recorder = recorder
        self.key = settings.attribution_key
        self.signer = tokens.Signer(self.key)
        self.secure_cookie = settings.public_base_url.startswith("https://")
        self.cookie_suffix = b"; Max-Age=31536000; Path=/s/; HttpOnly; SameSite=Lax" + (
            b"; Secure" if self.secure_cookie else b""
        )
        self._failures = 0
        self._failure_logged_at = -FAILURE_LOG_INTERVAL_SECONDS

    async def handle(self, scope: Scope, send: Send) -> None:
        # Runs ahead of the app's error handling, so it keeps its own last line of defence.
        try:
            # The fast path, which nearly every click takes: a GET for a cached live link by a
            # person's browser. Everything else is answered by _answer().
            code = scope["path"][_PREFIX_LENGTH:]
            cached = self.cache.fresh(code) if scope["method"] == "GET" else None
            if cached is not None and (target := cached[1]) is not None and not target.disabled:
                headers = self._click(scope, target, code)
                if headers is not None:
                    await send({"type": "http.response.start", "status": 302, "headers": headers})
                    await send(_EMPTY_BODY)
                    return
            await self._answer(scope, send, code)
        except Exception:
            log.exception("share_link_failed", path=scope.get("path"))
            REDIRECTS.labels("error").inc()
            await self._send(send, 503, b"text/html; charset=utf-8", _UNAVAILABLE)

    async def _answer(self, scope: Scope, send: Send, code: str) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await self._send(send, 405, b"text/plain; charset=utf-8", b"Method Not Allowed")
            return
        target = None
        cached = self.cache.fresh(code)
        if cached is not None:
            target = cached[1]
        elif 8 <= len(code) <= 16 and code.isalnum():
            try:
                target = await self.cache.get(code)
            except Exception:
                self._lookup_failed(code)
                REDIRECTS.labels("unavailable").inc()
                await self._send(send, 503, b"text/html; charset=utf-8", _UNAVAILABLE, method)
                return
        if target is None or target.disabled:
            REDIRECTS.labels("not_found").inc()
            await self._send(send, 404, b"text/html; charset=utf-8", _NOT_FOUND, method)
            return
        agent = classify_raw(_header(scope, b"user-agent"))
        if agent in _NOT_PEOPLE:
            REDIRECTS.labels(str(agent)).inc()
            lang = negotiate(_header(scope, b"accept-language").decode("latin-1") or None)
            page = self._preview(target, code, lang)
            await self._send(send, 200, b"text/html; charset=utf-8", page, method)
            return
        if method == "HEAD":
            REDIRECTS.labels("head").inc()
            location = self._location(target, b"")
            await self._send(send, 302, None, b"", method, location=location)
            return
        headers = self._click(scope, target, code)
        if headers is None:
            raise RuntimeError("a person's GET always makes a click")  # as checked above
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send(_EMPTY_BODY)

    def _lookup_failed(self, code: str) -> None:
        """Log a failed link lookup, at most once per interval with the count since the last
        line: in a database outage every uncached click fails, thousands a second, and a
        traceback each would flood the logs (the 503s are counted in metrics regardless)."""
        self._failures += 1
        now = time.monotonic()
        if now - self._failure_logged_at < FAILURE_LOG_INTERVAL_SECONDS:
            return
        log.warning("share_link_lookup_failed", code=code, failures=self._failures, exc_info=True)
        self._failures = 0
        self._failure_logged_at = now

    def _click(
        self, scope: Scope, target: LinkTarget, code: str
    ) -> list[tuple[bytes, bytes]] | None:
        """A person's click: recorded, and answered with these redirect headers. None when the
        caller is a preview fetcher or a bot, which gets the page instead and counts nothing."""
        # Every microsecond here is multiplied by every click in every chat group: one pass over
        # the headers, everything kept as bytes, constant header tuples, a pre-split location,
        # a pre-keyed HMAC, and the click buffered as it is (the flusher makes it a row).
        user_agent = b""
        cookie = referer = None
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value
            elif name == b"cookie":
                cookie = value
            elif name == b"referer":
                referer = value
        agent = classify_raw(user_agent)
        if agent in _NOT_PEOPLE:
            return None
        at = clock.timestamp()
        visitor = _visitor_cookie(cookie) if cookie else None
        click_id = uuid7()
        token = self.signer.sign(click_id.bytes, target.token_ids, int(at))
        location = (b"location", target.location_head + token + target.location_tail)
        if visitor is None:
            client = scope.get("client")
            visitor = visitor_hash(self.key, client[0] if client else "", user_agent)
            cookie_header = (
                b"set-cookie",
                VISITOR_COOKIE_PREFIX + visitor.encode() + self.cookie_suffix,
            )
            headers = [location, *_REDIRECT_HEADERS, cookie_header]
        else:
            headers = [location, *_REDIRECT_HEADERS]
        self.recorder.click(click_id, at, target, code + visitor, visitor, referer, agent)
        return headers

    @staticmethod
    def _location(target: LinkTarget, token: bytes) -> bytes:
        return target.location_head + token + target.location_tail

    def _preview(self, target: LinkTarget, code: str, lang: Lang = "zh") -> bytes:
        url = f"{self.settings.public_base_url}{PREFIX}{code}"
        price = amount = ""
        currency = target.currency
        if target.shop_price_minor is not None and target.currency is not None:
            price = display(target.shop_price_minor, target.currency)
            amount = major_units(target.shop_price_minor, target.currency)
        title = target.title
        description = f"{price} · {target.shop_name}" if price else target.shop_name
        deal = _campaign_line(target, lang)
        if deal is not None:
            line, title_line, selling = deal
            title = title_line
            description = f"{line} · {target.shop_name}"
            if selling is not None:  # live: the price a buyer pays now
                amount = major_units(selling.price_minor, selling.currency)
                currency = selling.currency
        e = html.escape
        tags = [
            ("og:type", "product" if target.product_id else "website"),
            ("og:title", title),
            ("og:description", description),
            ("og:url", url),
            ("og:site_name", target.shop_name),
            ("twitter:card", "summary_large_image" if target.image_url else "summary"),
            ("twitter:title", title),
            ("twitter:description", description),
        ]
        if target.image_url:
            tags += [("og:image", target.image_url), ("twitter:image", target.image_url)]
        if amount and currency:
            tags += [("product:price:amount", amount), ("product:price:currency", currency)]
        meta = "\n".join(
            f'<meta property="{e(name)}" content="{e(value)}">' for name, value in tags
        )
        image = f'<img src="{e(target.image_url)}" alt="" width="320">' if target.image_url else ""
        return f"""<!doctype html>
<html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<link rel="canonical" href="{e(url)}">
{meta}
</head><body><main><h1>{e(title)}</h1>{image}<p>{e(description)}</p>
<p><a href="{e(url)}">打开 Open</a></p></main></body></html>
""".encode()

    @staticmethod
    async def _send(
        send: Send,
        status: int,
        content_type: bytes | None,
        body: bytes,
        method: str = "GET",
        *,
        location: bytes | None = None,
    ) -> None:
        headers = [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
        if content_type:
            headers.append((b"content-type", content_type))
        if location:
            headers.append((b"location", location))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


# The preview's words for a campaign (the storefront's pages say the same in storefront/i18n.py;
# links cannot import the storefront, which imports links).
_CAMPAIGN_WORDS: dict[Lang, dict[str, str]] = {
    "zh": {
        "title": "【限时价 {price}】{title}",
        "warm_up": "限时价 {price} · {time}后开抢",
        "live": "限时价 {price} · 距结束 {time}",
        "d": "{n} 天",
        "h": "{n} 小时",
        "m": "{n} 分",
        "s": "{n} 秒",
    },
    "en": {
        "title": "[Campaign price {price}] {title}",
        "warm_up": "Campaign price {price} · starts in {time}",
        "live": "Campaign price {price} · ends in {time}",
        "d": "{n} d",
        "h": "{n} h",
        "m": "{n} min",
        "s": "{n} s",
    },
}


def _campaign_line(
    target: LinkTarget, lang: Lang
) -> tuple[str, str, campaigns.ShownVariant | None] | None:
    """(description, title, the variant selling at the campaign price now or None) for a
    product whose campaign is warming up, or live with units left, at the clock's now; None
    otherwise. Worked out here, from the cached times, so it is right to the second."""
    if not target.campaigns:
        return None
    now = clock.now()
    found = campaigns.showing_at(target.campaigns, now)
    if found is None:
        return None
    showing, phase = found
    live = phase is campaigns.Phase.live
    if live and showing.units_left <= 0:
        return None  # sold out at the campaign price: the regular price applies
    words = _CAMPAIGN_WORDS[lang]
    deal = showing.cheapest
    price = display(deal.price_minor, deal.currency)
    left = ((showing.ends_at if live else showing.starts_at) - now).total_seconds()
    time_left = " ".join(words[unit].format(n=n) for n, unit in campaigns.countdown(left))
    line = words[str(phase)].format(price=price, time=time_left)
    title = words["title"].format(price=price, title=target.title)
    return line, title, deal if live else None


_NOT_FOUND = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>链接已失效</title></head>
<body><main><h1>这个链接已失效 · This link no longer works</h1>
<p>It may have been disabled by the shop, or the product is no longer on sale.</p>
</main></body></html>
""".encode()
_UNAVAILABLE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>稍后再试</title>
</head><body><main><h1>请稍后再试 · Please try again in a moment</h1></main></body></html>
""".encode()


def new_code() -> str:
    """10 random URL-safe alphanumerics: about 59 bits, not guessable, not sequential."""
    alphabet = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(10))
