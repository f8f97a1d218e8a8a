"""Shop and product pages answered ahead of the framework from their rendered bytes: the
storefront's hot path, beside the share redirect (which sends every click here).

A share link posted to a busy chat group sends its readers to one product page within seconds
of each other. The first view of a page (per language) goes through FastAPI and the page's own
code (pages.py), which renders it and keeps the bytes here for TTL_SECONDS; until they lapse,
the same GET is answered from them without routing, dependency solving, the request-context
middleware (so no access-log line or request id for these answers, as for the redirect), or a
database round trip. Only pages that are the same for everyone are kept (no cookie set, no
query string), keyed by path and language, so what a reader sees is at most TTL_SECONDS old,
as with the page data cache (cache.py); checkout reads everything afresh.

A page showing a campaign is also kept no later than its next campaign time (warm-up, start,
end: `until`, by the app's clock), so a kept warm-up page is never answered after the start nor
a campaign price after the end; an early end shows within TTL_SECONDS of the data's reload.
"""

from __future__ import annotations

import time

from starlette.types import Scope, Send

from xiaopu.kit.clock import clock
from xiaopu.storefront import i18n
from xiaopu.storefront.cache import TTL_SECONDS

PREFIX = "/m/"
MAX_PAGES = 5_000


class RenderedPages:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self._pages: dict[
            tuple[str, str], tuple[float, list[tuple[bytes, bytes]], bytes, float | None]
        ] = {}

    def keep(
        self,
        path: str,
        lang: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        until: float | None = None,
    ) -> None:
        """Keep a page for TTL_SECONDS, and not once the app's clock reaches `until` (POSIX
        seconds: when what the page shows changes by itself, such as a campaign's start)."""
        if any(name == b"set-cookie" for name, _ in headers):
            return
        if len(self._pages) >= MAX_PAGES:
            self._pages.clear()
        self._pages[(path, lang)] = (time.monotonic() + self.ttl, headers, body, until)

    async def answer(self, scope: Scope, send: Send) -> bool:
        """Send the kept page for this request and say so; False to let the app answer."""
        if scope["method"] != "GET" or scope["query_string"]:
            return False
        accept = None
        for name, value in scope["headers"]:
            if name == b"accept-language":
                accept = value.decode("latin-1")
                break
        entry = self._pages.get((scope["path"], i18n.negotiate(accept)))
        if entry is None or entry[0] < time.monotonic():
            return False
        if entry[3] is not None and clock.timestamp() >= entry[3]:
            return False
        await send({"type": "http.response.start", "status": 200, "headers": entry[1]})
        await send({"type": "http.response.body", "body": entry[2]})
        return True

    def clear(self) -> None:
        self._pages.clear()
