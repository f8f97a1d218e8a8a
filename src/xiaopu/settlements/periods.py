"""Settlement periods: local days, Monday-to-Sunday weeks or calendar months of the platform's
time zone, bounded by local midnights stored as UTC instants (pure, no database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

PeriodKind = Literal["daily", "weekly", "monthly"]


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    first_day: date
    last_day: date
    start: datetime  # UTC instant of the first day's local midnight
    end: datetime  # UTC instant of the local midnight after the last day (exclusive)


def _first_day(kind: PeriodKind, day: date) -> date:
    if kind == "daily":
        return day
    if kind == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_first_day(kind: PeriodKind, first: date) -> date:
    if kind == "daily":
        return first + timedelta(days=1)
    if kind == "weekly":
        return first + timedelta(days=7)
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def containing(kind: PeriodKind, zone: ZoneInfo, at: datetime) -> Period:
    """The period whose local days include the instant `at`."""
    first = _first_day(kind, at.astimezone(zone).date())
    after = _next_first_day(kind, first)
    return Period(
        kind, first, after - timedelta(days=1), _midnight(first, zone), _midnight(after, zone)
    )


def last_ended(kind: PeriodKind, zone: ZoneInfo, now: datetime) -> Period:
    """The latest period that has ended by `now`: the one before the period `now` is in."""
    current = containing(kind, zone, now)
    return containing(kind, zone, current.start - timedelta(microseconds=1))
