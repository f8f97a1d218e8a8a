"""Sessions revoked by logout or refresh-token reuse: a per-process set, kept current by polling.

An access token names its session (the refresh-token family) and is checked without the database,
so a revoked session's token would be honoured until it expires. Each process keeps the families
revoked within an access token's lifetime in memory: loaded at start-up, read again every
`session_revocation_poll_seconds` with one indexed query for what was revoked since the last read,
and added to at once when this process revokes. Checking a token is a set lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.auth import repository
from xiaopu.auth.tokens import LEEWAY
from xiaopu.config import Settings
from xiaopu.kit.clock import utcnow

log = structlog.get_logger(__name__)

# Each read looks this far behind the newest revocation it has seen: a revocation stamped before
# it but committed after it (a slower transaction, another server's clock) is still found.
OVERLAP = timedelta(seconds=30)


class SessionRevocations:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessionmaker = sessionmaker
        self._interval = settings.session_revocation_poll_seconds
        # A token of a family revoked at R was issued by R, so it is refused anyway once R is
        # further back than a token's lifetime and the leeway expiry allows.
        self._keep = timedelta(seconds=settings.access_token_ttl_seconds) + LEEWAY + OVERLAP
        self._revoked: dict[uuid.UUID, datetime] = {}
        self._newest: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def __contains__(self, session_id: uuid.UUID) -> bool:
        return session_id in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def add(self, session_id: uuid.UUID, at: datetime) -> None:
        """This process revoked the session: refuse it here at once, not at the next read."""
        if self._revoked.get(session_id, at) <= at:
            self._revoked[session_id] = at

    async def load(self) -> int:
        """Read the families revoked since the last read (the last token lifetime, at first);
        answers how many rows came back."""
        now = utcnow()
        since = now - self._keep if self._newest is None else self._newest - OVERLAP
        async with self._sessionmaker() as session:
            rows = await repository.families_revoked_since(session, since)
        for family_id, at in rows:
            self.add(family_id, at)
            if self._newest is None or at > self._newest:
                self._newest = at
        if self._newest is None:
            # Nothing revoked yet: the next read starts from here rather than a lifetime back.
            self._newest = now - OVERLAP
        horizon = now - self._keep
        for family_id in [f for f, at in self._revoked.items() if at < horizon]:
            del self._revoked[family_id]
        return len(rows)

    async def start(self) -> None:
        if self._task is not None:
            return
        try:
            await self.load()
        except Exception:  # the database may come up after the API; the poller keeps trying
            log.exception("session_revocations_load_failed")
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="session-revocations")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if self._stopping.is_set():
                return
            try:
                await self.load()
            except Exception:
                log.exception("session_revocations_load_failed")
