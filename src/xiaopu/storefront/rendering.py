"""Jinja2 templates (escaped by default), the static files, and the HTML responses every page
sends with its security headers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from xiaopu.campaigns import service as campaigns
from xiaopu.config import Settings
from xiaopu.kit.money import major_units
from xiaopu.storefront import i18n
from xiaopu.storefront.security import PAGE_HEADERS

HERE = Path(__file__).resolve().parent
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    version: str


def _load_assets() -> dict[str, Asset]:
    """Every file in static/, read once: served from memory under a name-and-hash URL."""
    assets = {}
    for path in sorted((HERE / "static").rglob("*")):
        if path.is_file() and path.suffix in STATIC_TYPES:
            body = path.read_bytes()
            name = path.relative_to(HERE / "static").as_posix()
            version = hashlib.sha256(body).hexdigest()[:10]
            assets[name] = Asset(body, STATIC_TYPES[path.suffix], version)
    return assets


ASSETS = _load_assets()


def asset_url(name: str) -> str:
    return f"/m/_/{name}?v={ASSETS[name].version}"


_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
_env.globals["asset"] = asset_url
_env.globals["major_units"] = major_units


def _options(options: dict[str, Any]) -> str:
    return " · ".join(f"{value}" for value in options.values())


_env.filters["options"] = _options


class Page:
    """What a page renders with: the reader's language and the helpers its words need."""

    def __init__(self, request: Request, settings: Settings) -> None:
        self.request = request
        self.settings = settings
        self.lang = i18n.negotiate(request.headers.get("accept-language"))

    def t(self, key: str, **values: object) -> str:
        return i18n.text(self.lang, key, **values)

    def money(self, amount_minor: int, currency: str) -> str:
        return i18n.money(amount_minor, currency, self.lang)

    def duration(self, seconds: float) -> str:
        """Time left in words ("2 小时 14 分"), as static/countdown.js goes on counting it."""
        return i18n.duration(self.lang, campaigns.countdown(seconds))

    def when(self, at: datetime | None) -> str:
        """A time in the platform's zone, as people there read it."""
        if at is None:
            return ""
        local = at.astimezone(self.settings.zone)
        return local.strftime("%Y-%m-%d %H:%M")

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        cache: str = "no-store",
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        context.setdefault("slug", None)
        html = _env.get_template(template).render(
            page=self,
            t=self.t,
            money=self.money,
            when=self.when,
            lang=self.lang,
            html_lang=i18n.HTML_LANG[self.lang],
            **context,
        )
        all_headers = {**PAGE_HEADERS, "Cache-Control": cache, "Vary": "Accept-Language"}
        all_headers.update(headers or {})
        return HTMLResponse(html, status_code=status, headers=all_headers)


def asset_response(name: str, version: str | None) -> Response:
    found = ASSETS.get(name)
    if found is None:
        return Response(b"Not Found", status_code=404, media_type="text/plain")
    # A versioned URL never changes what it names: cached for good.
    cache = (
        "public, max-age=31536000, immutable" if version == found.version else "public, max-age=60"
    )
    return Response(
        found.body,
        media_type=found.content_type,
        headers={
            "Cache-Control": cache,
            "X-Content-Type-Options": "nosniff",
            # An SVG opened on its own is a document: it may run nothing.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )
