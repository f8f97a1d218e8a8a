"""Rate limits on the `limits` library: in memory for one process, Redis across workers."""

from __future__ import annotations

import math
import time
from typing import NoReturn

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from xiaopu.errors import TooManyRequests


class Limiter:
    def __init__(self, storage_url: str) -> None:
        storage = storage_from_string(storage_url if "://" in storage_url else "memory://")
        if not isinstance(storage, Storage):
            # Sync URLs (memory://, redis://) have async twins under the async+ scheme.
            storage = storage_from_string("async+" + storage_url)
        if not isinstance(storage, Storage):
            raise ValueError(f"no async rate-limit storage for {storage_url!r}")
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    @staticmethod
    def rule(spec: str) -> RateLimitItem:
        return parse(spec)

    async def consume(self, rule: RateLimitItem, *identifiers: str) -> None:
        """Count one attempt, or raise 429 with Retry-After when the window is used up.

        Counting before the work (not after it fails) keeps parallel attempts from all slipping
        through while the first ones are still being checked.
        """
        if not await self._limiter.hit(rule, *identifiers):
            await self._refuse(rule, *identifiers)

    async def check(self, rule: RateLimitItem, *identifiers: str) -> None:
        """Raise 429 with Retry-After when the window is used up, without counting anything."""
        if not await self._limiter.test(rule, *identifiers):
            await self._refuse(rule, *identifiers)

    async def count(self, rule: RateLimitItem, *identifiers: str) -> None:
        """Count one event; a full window keeps its count (it is refused by check or consume)."""
        await self._limiter.hit(rule, *identifiers)

    async def used(self, rule: RateLimitItem, *identifiers: str) -> int:
        """Events counted in the window now."""
        stats = await self._limiter.get_window_stats(rule, *identifiers)
        return rule.amount - stats.remaining

    async def clear(self, rule: RateLimitItem, *identifiers: str) -> None:
        await self._limiter.clear(rule, *identifiers)

    async def _refuse(self, rule: RateLimitItem, *identifiers: str) -> NoReturn:
        stats = await self._limiter.get_window_stats(rule, *identifiers)
        raise TooManyRequests(retry_after=math.ceil(stats.reset_time - time.time()))

    async def reset(self) -> None:
        await self._storage.reset()
