"""Statement exports: asked for, built by the worker in chunks, downloaded when ready, and the
same CSV as the inline one."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.helpers import checkout, market, new_supply, pay, run_queued
from xiaopu.commissions import exports
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
    await exports.build(replay, uuid.UUID(export["id"]))
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
