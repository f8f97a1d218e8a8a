"""Statements at scale: lines in keyset pages with the period's totals on each, and a period
longer than the inline limit refused with a problem that says to request an export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.helpers import checkout, market, pay
from xiaopu.app import create_app
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock

ORDERS = 5


@pytest.fixture
async def small_limit_client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app answering at most 3 statement lines inline."""
    app = create_app(
        settings.model_copy(update={"statement_inline_max_lines": 3}), sessionmaker=sessionmaker
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.11", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_pages_of_lines_add_up_to_the_period_and_a_long_one_is_refused(
    client: httpx.AsyncClient,
    small_limit_client: httpx.AsyncClient,
    session: AsyncSession,
    test_clock: Clock,
) -> None:
    m = await market(client, session, price=10_000, stock=50, commission_bps=1000)
    supply = m.suppliers[0]
    start = test_clock.freeze(test_clock.now())
    for n in range(ORDERS):
        test_clock.freeze(start + timedelta(seconds=n))  # each sale its own time
        await pay(client, await checkout(client, m.slug, [(m.variant, 1)]))
    url = f"/v1/suppliers/{supply.id}/statements"
    period = {
        "since": (start - timedelta(minutes=1)).isoformat(),
        "until": (start + timedelta(minutes=1)).isoformat(),
    }

    whole = await client.get(url, params=period, headers=supply.headers)
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["next_cursor"] is None
    sales = [line for line in body["lines"] if line["kind"] == "sale" and line["sku"]]
    assert len(sales) == ORDERS
    (totals,) = body["totals"]
    assert totals["sales_minor"] == ORDERS * 10_000

    paged: list[dict[str, object]] = []
    cursor = None
    while True:
        params = {**period, "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get(url, params=params, headers=supply.headers)
        assert page.status_code == 200, page.text
        assert len(page.json()["lines"]) <= 2
        assert page.json()["totals"] == body["totals"]  # the period's, on every page
        paged += page.json()["lines"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert paged == body["lines"]
    assert [line["at"] for line in paged] == sorted(line["at"] for line in paged)

    for fmt in ("json", "csv"):
        refused = await small_limit_client.get(
            url, params={**period, "format": fmt}, headers=supply.headers
        )
        assert refused.status_code == 413, refused.text
        problem = refused.json()
        assert problem["code"] == "statement_too_large"
        assert problem["max_lines"] == 3
        assert "export" in problem["detail"]

    broken = await client.get(
        url, params={**period, "cursor": "bm90LWEtY3Vyc29y"}, headers=supply.headers
    )
    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_cursor"
