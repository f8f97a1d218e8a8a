"""Checkout's light unit of work (docs/checkout-unit-of-work.md): no fallback on its usual path."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from tests.catalogue.helpers import new_actor
from tests.conftest import make_settings
from tests.orders.conftest import Live
from tests.orders.helpers import checkout, key, market, place
from xiaopu.app import create_app

pytestmark = pytest.mark.concurrent


def fallbacks() -> float:
    """Units of work run again on a full session because the light one could not do them."""
    value = REGISTRY.get_sample_value(
        "xiaopu_unit_of_work_reruns_total", {"reason": "needs_session"}
    )
    return value or 0.0


async def _ordinary_checkouts(client: httpx.AsyncClient, live: Live) -> None:
    """What checkout usually meets: guests and signed-in buyers, one line or several from
    several suppliers, a retry replayed, a key reused, and refusals."""
    async with live.sessionmaker() as session:
        m = await market(client, session, suppliers=2, stock=100, products=2)
    (a, b), (c, _) = (s.variants for s in m.suppliers)
    buyer = await new_actor(client)

    await checkout(client, m.slug, [(a, 1)])
    await checkout(client, m.slug, [(a, 2), (b, 1), (c, 3)], headers=buyer.headers)
    retry = {**key(), **buyer.headers}
    first = await place(client, m.slug, [(b, 1)], headers=retry)
    again = await place(client, m.slug, [(b, 1)], headers=retry)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    reused = await place(client, m.slug, [(c, 1)], headers=retry)
    assert reused.json()["code"] == "idempotency_key_reused"
    short = await place(client, m.slug, [(a, 99)])
    assert short.json()["code"] == "out_of_stock"
    elsewhere = await place(client, "no-such-shop", [(a, 1)])
    assert elsewhere.status_code == 404, elsewhere.text


@pytest.mark.parametrize("fast_path", [True, False])
async def test_ordinary_checkouts_never_fall_back_to_a_full_session(
    live: Live, fast_path: bool
) -> None:
    """Through the route answered ahead of FastAPI, and through the declared endpoint (with
    XIAOPU_CHECKOUT_FAST_PATH=false): both run checkout in the light unit of work."""
    settings = make_settings(str(live.settings.database_url), checkout_fast_path=fast_path)
    app = create_app(settings, sessionmaker=live.sessionmaker)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        before = fallbacks()
        await _ordinary_checkouts(client, live)
        assert fallbacks() == before


async def test_the_count_sees_a_checkout_that_falls_back(live: Live) -> None:
    """So that the test above would catch a fallback: a checkout taking a variant's stock below
    its low threshold has a continuation that writes (product.stock_low) and needs a
    transaction around the writes, which only a full session has; it falls back once."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=10)
    async with live.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE variants SET low_stock_threshold = 5 WHERE id = :id"), {"id": m.variant}
        )
    before = fallbacks()

    await checkout(live.client, m.slug, [(m.variant, 1)])
    assert fallbacks() == before  # still above the threshold: nothing to continue with
    await checkout(live.client, m.slug, [(m.variant, 6)])

    assert fallbacks() == before + 1
    async with live.sessionmaker() as session:
        low = await session.scalar(
            text("SELECT count(*) FROM events WHERE type = 'product.stock_low'")
        )
    assert low == 1
