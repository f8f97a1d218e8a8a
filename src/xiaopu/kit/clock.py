"""The one clock all code reads, so tests can move time instead of sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock UTC time, optionally frozen or shifted by tests."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._offset = timedelta()
        self._offset_seconds = 0.0

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return datetime.now(UTC) + self._offset

    def timestamp(self) -> float:
        """now() as POSIX seconds, without making a datetime (the share redirect's clock)."""
        if self._frozen is not None:
            return self._frozen.timestamp()
        return time.time() + self._offset_seconds

    def freeze(self, at: datetime | None = None) -> datetime:
        moment = at or self.now()
        if moment.tzinfo is None:
            raise ValueError("clock times must be timezone-aware")
        self._frozen = moment.astimezone(UTC)
        return self._frozen

    def advance(self, delta: timedelta) -> datetime:
        if self._frozen is not None:
            self._frozen += delta
        else:
            self._offset += delta
            self._offset_seconds = self._offset.total_seconds()
        return self.now()

    def reset(self) -> None:
        self._frozen = None
        self._offset = timedelta()
        self._offset_seconds = 0.0


clock = Clock()


def utcnow() -> datetime:
    return clock.now()
