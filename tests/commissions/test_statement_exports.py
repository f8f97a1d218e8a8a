"""Statement exports: asked for, built by the worker in chunks, downloaded when ready, and the
same CSV as the inline one."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.helpers import checkout, market, new_supply, pay, run_queued, run_schedule
from xiaopu.commissions import exports
from xiaopu.commissions.jobs import PURGE_JOB
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock

ORDERS = 5


async def test_an_export_is_built_in_chunks_and_downloaded_when_ready(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    test_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exports, "CHUNK_LINES", 2)  # several chunks from a few lines
    m = await market(client, session, price=10_000, stock=50, commission_bps=1000)
    supply = m.suppliers[0]
    start = test_clock.freeze(test_clock.now())
    for n in range(ORDERS):
        test_clock.freeze(start + timedelta(seconds=n))
        await pay(client, await checkout(client, m.slug, [(m.variant, 1)]))
    period = {
        "since": (start - timedelta(minutes=1)).isoformat(),
        "until": (start + timedelta(minutes=1)).isoformat(),
    }
    base = f"/v1/suppliers/{supply.id}/statements"

    asked = await client.post(f"{base}/exports", json=period, headers=supply.headers)
    assert asked.status_code == 202, asked.text
    export = asked.json()
    assert export["status"] == "queued"
    early = await client.get(f"{base}/exports/{export['id']}/download", headers=supply.headers)
    assert early.status_code == 409
    assert early.json()["code"] == "statement_export_not_ready"

    assert await run_queued(session, settings, exports.EXPORT_JOB) == 1

    done = await client.get(f"{base}/exports/{export['id']}", headers=supply.headers)
    assert done.status_code == 200, done.text
    inline = await client.get(base, params={**period, "format": "csv"}, headers=supply.headers)
    assert inline.status_code == 200, inline.text
    lines = inline.text.count("\n") - 1
    assert done.json()["status"] == "ready"
    assert done.json()["lines"] == lines
    assert done.json()["size_bytes"] == len(inline.content)
    chunks = await session.scalar(
        text("SELECT count(*) FROM statement_export_chunks WHERE export_id = :id"),
        {"id": export["id"]},
    )
    assert chunks == 1 + -(-lines // 2)  # the header, then two lines a chunk

    download = await client.get(f"{base}/exports/{export['id']}/download", headers=supply.headers)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert download.content == inline.content  # the same statement, however it was built

    # A replayed job leaves a finished export alone.
    replay = async_sessionmaker(bind=session.bind, join_transaction_mode="create_savepoint")
    await exports.build(replay, uuid.UUID(export["id"]), retention=timedelta(days=7))
    again = await client.get(f"{base}/exports/{export['id']}", headers=supply.headers)
    assert again.json() == done.json()

    stranger = await new_supply(client, m.op)
    foreign = await client.get(f"{base}/exports/{export['id']}", headers=stranger.headers)
    assert foreign.status_code == 404
    theirs = await client.get(
        f"/v1/suppliers/{stranger.id}/statements/exports/{export['id']}",
        headers=stranger.headers,
    )
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "statement_export_not_found"
    wrong = await client.post(
        f"{base}/exports",
        json={"since": period["until"], "until": period["since"]},
        headers=supply.headers,
    )
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "invalid_period"


async def test_an_export_is_asked_for_once_per_key_a_few_at_a_time_and_expires(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    test_clock: Clock,
) -> None:
    m = await market(client, session, price=10_000, stock=50, commission_bps=1000)
    supply = m.suppliers[0]
    start = test_clock.freeze(test_clock.now())
    await pay(client, await checkout(client, m.slug, [(m.variant, 1)]))
    base = f"/v1/suppliers/{supply.id}/statements/exports"

    def period(minutes: int) -> dict[str, str]:
        return {
            "since": (start - timedelta(minutes=minutes)).isoformat(),
            "until": (start + timedelta(minutes=1)).isoformat(),
        }

    keyed = {**supply.headers, "Idempotency-Key": f"export-{uuid.uuid4()}"}
    first = await client.post(base, json=period(1), headers=keyed)
    retried = await client.post(base, json=period(1), headers=keyed)
    assert first.status_code == retried.status_code == 202, retried.text
    assert retried.json()["id"] == first.json()["id"]  # one export, however often it is asked
    reused = await client.post(base, json=period(2), headers=keyed)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"

    # The keyed one is pending; two more fill the limit, and a fourth must wait.
    assert settings.statement_exports_pending_max == 3
    for minutes in (3, 4):
        more = await client.post(base, json=period(minutes), headers=supply.headers)
        assert more.status_code == 202, more.text
    refused = await client.post(base, json=period(5), headers=supply.headers)
    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_exports"
    assert refused.json()["max_pending"] == 3
    assert refused.headers["Retry-After"] == "30"
    # Another supplier's exports are not held up by this one's.
    other = await new_supply(client, m.op)
    theirs = await client.post(
        f"/v1/suppliers/{other.id}/statements/exports", json=period(1), headers=other.headers
    )
    assert theirs.status_code == 202, theirs.text

    assert await run_queued(session, settings, exports.EXPORT_JOB) == 4
    after = await client.post(base, json=period(5), headers=supply.headers)
    assert after.status_code == 202, after.text  # built ones no longer count
    await run_queued(session, settings, exports.EXPORT_JOB)

    url = f"{base}/{first.json()['id']}"
    ready = (await client.get(url, headers=supply.headers)).json()
    assert ready["status"] == "ready"
    expires = datetime.fromisoformat(ready["expires_at"])
    assert expires == datetime.fromisoformat(ready["finished_at"]) + timedelta(
        hours=settings.statement_export_retention_hours
    )

    # Just before the retention ends the purge leaves it; at the end it deletes the CSV.
    test_clock.freeze(expires - timedelta(seconds=1))
    await run_schedule(session, settings, PURGE_JOB)
    assert (await client.get(f"{url}/download", headers=supply.headers)).status_code == 200
    test_clock.freeze(expires)
    await run_schedule(session, settings, PURGE_JOB)
    gone = await client.get(f"{url}/download", headers=supply.headers)
    assert gone.status_code == 410
    assert gone.json()["code"] == "statement_export_expired"
    assert (await client.get(url, headers=supply.headers)).json()["status"] == "expired"
    chunks = await session.scalar(
        text("SELECT count(*) FROM statement_export_chunks WHERE export_id = :id"),
        {"id": first.json()["id"]},
    )
    assert chunks == 0
    # Every export of that supplier finished at the same instant expired with it; the other
    # supplier's too, and nothing else is left to purge.
    left = await session.scalar(
        text("SELECT count(*) FROM statement_exports WHERE status = 'ready' AND expires_at <= :t"),
        {"t": expires},
    )
    assert left == 0
