"""Idempotency-Key records are kept 24 hours, then purged by a scheduled job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import login_ok
from tests.factories import bearer
from tests.idempotency.helpers import (
    REQUIRED,
    Api,
    Caller,
    assert_replay_of,
    new_caller,
    new_key,
    owned_suppliers,
    post,
)
from xiaopu import jobs
from xiaopu.config import Settings
from xiaopu.idempotency import jobs as idempotency_jobs
from xiaopu.idempotency.service import RETENTION, purge_expired
from xiaopu.kit.clock import Clock
from xiaopu.models import IdempotencyKey

START = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


async def _keys(session: AsyncSession) -> set[str]:
    return set(await session.scalars(select(IdempotencyKey.key)))


async def _keyed_request(api: Api, caller: Caller, key: str) -> httpx.Response:
    response = await post(api.client, REQUIRED, caller, key)
    assert response.status_code == 201, response.text
    assert "Idempotent-Replayed" not in response.headers
    return response


async def _relogin(api: Api, caller: Caller) -> Caller:
    """The same person with a fresh access token (the clock has moved past the old one)."""
    tokens = await login_ok(api.client, caller.email)
    return Caller(caller.account_id, caller.email, bearer(tokens["access_token"]))


def test_keys_are_kept_24_hours() -> None:
    assert timedelta(hours=24) == RETENTION


async def test_purge_deletes_records_older_than_24_hours_and_keeps_newer_ones(
    api: Api, session: AsyncSession, test_clock: Clock
) -> None:
    test_clock.freeze(START)
    caller = await new_caller(api.client)
    await _keyed_request(api, caller, "day-old")
    test_clock.advance(timedelta(hours=1))
    caller = await _relogin(api, caller)
    await _keyed_request(api, caller, "23-hours-old")
    test_clock.advance(timedelta(hours=22, minutes=59))
    caller = await _relogin(api, caller)
    await _keyed_request(api, caller, "just-made")
    test_clock.advance(timedelta(hours=1))  # "day-old" is now 24 h 59 min old

    deleted = await purge_expired(session)

    assert deleted == 1
    assert await _keys(session) == {"23-hours-old", "just-made"}


async def test_purge_keeps_a_record_a_moment_short_of_24_hours(
    api: Api, session: AsyncSession, test_clock: Clock
) -> None:
    test_clock.freeze(START)
    caller = await new_caller(api.client)
    await _keyed_request(api, caller, "almost-expired")

    test_clock.advance(RETENTION - timedelta(seconds=1))
    assert await purge_expired(session) == 0
    assert await _keys(session) == {"almost-expired"}

    test_clock.advance(timedelta(seconds=2))
    assert await purge_expired(session) == 1
    assert await _keys(session) == set()


async def test_purge_with_nothing_to_delete_deletes_nothing(
    api: Api, session: AsyncSession
) -> None:
    caller = await new_caller(api.client)
    await _keyed_request(api, caller, new_key())

    assert await purge_expired(session) == 0
    assert len(await _keys(session)) == 1


async def test_a_purged_key_runs_anew(api: Api, session: AsyncSession, test_clock: Clock) -> None:
    test_clock.freeze(START)
    caller = await new_caller(api.client)
    key = new_key()
    first = await _keyed_request(api, caller, key)
    assert_replay_of(await post(api.client, REQUIRED, caller, key), first)

    test_clock.advance(RETENTION + timedelta(minutes=10))
    assert await purge_expired(session) == 1
    caller = await _relogin(api, caller)
    again = await post(api.client, REQUIRED, caller, key)

    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert await owned_suppliers(session, caller.account_id) == 2


async def test_the_purge_is_scheduled() -> None:
    (schedule,) = [s for s in jobs.schedules() if s.name == "idempotency.purge"]

    assert schedule.handler is idempotency_jobs.purge
    assert schedule.cron == "*/10 * * * *"


async def test_the_scheduled_handler_purges(
    api: Api, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(START)
    caller = await new_caller(api.client)
    await _keyed_request(api, caller, "old")
    test_clock.advance(RETENTION + timedelta(minutes=1))
    caller = await _relogin(api, caller)
    await _keyed_request(api, caller, "new")
    (schedule,) = [s for s in jobs.schedules() if s.name == "idempotency.purge"]

    async with httpx.AsyncClient() as http:
        await schedule.handler(session, jobs.JobContext(settings=settings, http=http), b"")

    assert await _keys(session) == {"new"}
