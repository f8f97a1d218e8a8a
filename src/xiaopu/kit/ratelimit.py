"""Rate limits on the `limits` library: in memory for one process, Redis across workers."""

from __future__ import annotations

import math
import time

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
            stats = await self._limiter.get_window_stats(rule, *identifiers)
            raise TooManyRequests(retry_after=math.ceil(stats.reset_time - time.time()))

    async def reset(self) -> None:
        await self._storage.reset()
