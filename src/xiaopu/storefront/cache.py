"""The shop and product pages' data, cached for a few seconds per process like the share link's
targets: a page opened from a busy chat group costs no database round trip per view.

Stale for at most TTL_SECONDS: a changed price, stock level or listing shows within that time,
and checkout (which reads everything afresh and prices by its own rules) never sells on what a
page showed. Concurrent misses for one key share one load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000


class PageCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._loading: dict[Hashable, asyncio.Task[Any]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        """The value cached under `key`, or what `load` returns (errors are not cached)."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        # Shielded: one caller giving up must not cancel the load the others are waiting for.
        return await asyncio.shield(task)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        value = await load()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
