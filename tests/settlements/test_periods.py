"""Settlement periods are local days, weeks and months of the platform's time zone; the time
zone setting is checked at start-up."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from xiaopu.config import Settings
from xiaopu.settlements import periods

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_week_runs_monday_to_sunday_in_local_days() -> None:
    # Sunday 6 December, 23:59 in Shanghai is still the week of Monday 30 November.
    late_sunday = datetime(2026, 12, 6, 15, 59, tzinfo=UTC)
    week = periods.containing("weekly", SHANGHAI, late_sunday)
    assert (week.first_day, week.last_day) == (date(2026, 11, 30), date(2026, 12, 6))
    assert week.start == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    assert week.end == datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    # A minute later it is Monday there: that week has ended.
    monday = datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    assert periods.last_ended("weekly", SHANGHAI, monday) == week
    assert periods.last_ended("weekly", SHANGHAI, late_sunday).first_day == date(2026, 11, 23)


def test_days_and_months() -> None:
    at = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 1 March, 10:00 in Shanghai
    day = periods.last_ended("daily", SHANGHAI, at)
    assert (day.first_day, day.last_day) == (date(2026, 2, 28), date(2026, 2, 28))
    month = periods.last_ended("monthly", SHANGHAI, at)
    assert (month.first_day, month.last_day) == (date(2026, 2, 1), date(2026, 2, 28))
    assert month.end == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    december = periods.containing("monthly", SHANGHAI, datetime(2026, 12, 31, 15, 0, tzinfo=UTC))
    assert (december.last_day, december.end) == (
        date(2026, 12, 31),
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
    )


def test_a_day_across_a_clock_change_is_23_hours_long() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    day = periods.containing("daily", berlin, datetime(2026, 3, 29, 12, 0, tzinfo=UTC))
    assert (day.end - day.start).total_seconds() == 23 * 3600


def test_the_time_zone_setting() -> None:
    assert Settings().time_zone == "Asia/Shanghai"
    assert Settings().settlement_period == "weekly"
    assert Settings(time_zone="Europe/Berlin").zone == ZoneInfo("Europe/Berlin")
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        Settings(time_zone="Mars/Olympus_Mons")
    with pytest.raises(ValidationError):
        Settings(settlement_period="fortnightly")


def test_the_time_zone_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XIAOPU_TIME_ZONE", "America/New_York")
    monkeypatch.setenv("XIAOPU_SETTLEMENT_PERIOD", "monthly")
    settings = Settings()
    assert (settings.time_zone, settings.settlement_period) == ("America/New_York", "monthly")
