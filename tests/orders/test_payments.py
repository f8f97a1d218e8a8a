"""Opening a payment: the provider is asked once per order, outside checkout's rerun work and
outside any transaction, however often and however concurrently the buyer asks to pay."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import assert_problem
from tests.orders.conftest import Live
from tests.orders.helpers import ask_to_pay, checkout, market, place, run_schedule
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.orders import payments, service
from xiaopu.orders.providers import PaymentIntent, ProviderUnavailable, SandboxProvider


class Calls:
    """What the provider double was asked: each create_payment call's reference, and what
    `probe` (if set) found while the call was under way."""

    def __init__(self) -> None:
        self.refs: list[str] = []
        self.fail_next = False
        self.crash_next = False
        self.entered = asyncio.Event()
        self.release: asyncio.Event | None = None
        self.probe: Callable[[], Awaitable[int]] | None = None
        self.probed: list[int] = []

    @property
    def per_order(self) -> Counter[str]:
        return Counter(self.refs)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The sandbox provider, counting its create_payment calls; it can be made to fail once, or
    to hold a call until released."""
    seen = Calls()
    real = SandboxProvider.create_payment

    async def counting(
        self: SandboxProvider, payment_ref: str, amount_minor: int, currency: str, at: datetime
    ) -> PaymentIntent:
        seen.refs.append(payment_ref)
        seen.entered.set()
        if seen.probe is not None:
            seen.probed.append(await seen.probe())
        if seen.release is not None:
            await seen.release.wait()
        if seen.fail_next:
            seen.fail_next = False
            raise ProviderUnavailable("sandbox: the provider timed out")
        if seen.crash_next:
            seen.crash_next = False
            raise httpx.ReadTimeout("the provider's answer never came")
        return await real(self, payment_ref, amount_minor, currency, at)

    monkeypatch.setattr(SandboxProvider, "create_payment", counting)
    return seen


async def test_asking_to_pay_twice_opens_one_payment(
    client: httpx.AsyncClient, session: AsyncSession, calls: Calls
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    assert calls.refs == []  # checkout never calls the provider
    assert order["payment"]["pay_url"] is None

    first = await ask_to_pay(client, order)
    again = await ask_to_pay(client, order)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json() == again.json()
    assert calls.per_order == {order["payment"]["provider_ref"]: 1}
    payment = first.json()
    assert payment["status"] == "pending"
    assert payment["amount_minor"] == order["total_minor"]
    seen = await client.get(
        f"/v1/orders/{order['id']}", headers={"X-Order-Token": order["access_token"]}
    )
    assert seen.json()["payment"]["pay_url"] == payment["pay_url"]

    paid = await client.post(urlsplit(payment["pay_url"]).path, json={"outcome": "paid"})
    assert paid.json()["result"]["outcome"] == "applied"
    body = assert_problem(await ask_to_pay(client, order), 409, "order_not_payable")
    assert body["current_status"] == "paid"
    assert calls.per_order == {order["payment"]["provider_ref"]: 1}


async def test_an_expired_order_cannot_be_paid_for(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    test_clock: Clock,
    calls: Calls,
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    test_clock.advance(timedelta(minutes=settings.order_expiry_minutes + 1))
    await run_schedule(session, settings, "orders.expire")
    body = assert_problem(await ask_to_pay(client, order), 409, "order_not_payable")
    assert body["current_status"] == "expired"
    assert calls.refs == []


async def test_a_concurrent_ask_is_told_to_retry_while_the_first_is_with_the_provider(
    client: httpx.AsyncClient, session: AsyncSession, calls: Calls
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    calls.release = asyncio.Event()
    first = asyncio.create_task(ask_to_pay(client, order))
    await asyncio.wait_for(calls.entered.wait(), timeout=10)
    # The claim is committed before the call, and nothing is held open during it: another
    # request on the (tests' one) connection goes through at once.
    twin = await ask_to_pay(client, order)
    assert_problem(twin, 409, "payment_opening")
    assert twin.headers["Retry-After"] == "1"
    calls.release.set()
    opened = await first
    assert opened.status_code == 200, opened.text
    later = await ask_to_pay(client, order)
    assert later.json() == opened.json()
    assert calls.per_order == {order["payment"]["provider_ref"]: 1}


async def test_a_failed_call_gives_up_its_claim_and_the_next_ask_calls_again(
    client: httpx.AsyncClient, session: AsyncSession, calls: Calls
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    calls.fail_next = True
    failed = await ask_to_pay(client, order)
    assert_problem(failed, 502, "payment_provider_unavailable")
    claimed = await session.scalar(
        text("SELECT open_claimed_at FROM payments WHERE order_id = :o"), {"o": order["id"]}
    )
    assert claimed is None
    opened = await ask_to_pay(client, order)
    assert opened.status_code == 200, opened.text
    assert opened.json()["pay_url"] is not None
    assert calls.per_order == {order["payment"]["provider_ref"]: 2}  # the first opened nothing


async def test_a_provider_that_breaks_is_a_502_never_a_500(
    client: httpx.AsyncClient, session: AsyncSession, calls: Calls
) -> None:
    """A provider's own exception (here a read timeout from its HTTP client) tells the buyer the
    same as a refusal: nothing opened, ask again."""
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    calls.crash_next = True
    assert_problem(await ask_to_pay(client, order), 502, "payment_provider_unavailable")
    opened = await ask_to_pay(client, order)
    assert opened.status_code == 200, opened.text
    assert calls.per_order == {order["payment"]["provider_ref"]: 2}


async def test_a_claim_whose_request_died_lapses(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock, calls: Calls
) -> None:
    """A request that claimed the payment and died before recording the provider's answer
    leaves its claim: asks wait it out, then call the provider again, which (idempotent on the
    reference) answers with the payment it may already have opened."""
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    now = test_clock.freeze(test_clock.now())
    await session.execute(
        text("UPDATE payments SET open_claimed_at = :at WHERE order_id = :o"),
        {"at": now, "o": order["id"]},
    )
    await session.commit()
    assert_problem(await ask_to_pay(client, order), 409, "payment_opening")
    test_clock.advance(payments.OPEN_CLAIM)
    opened = await ask_to_pay(client, order)
    assert opened.status_code == 200, opened.text
    assert calls.per_order == {order["payment"]["provider_ref"]: 1}


async def test_only_the_orders_buyer_can_ask_to_pay(
    client: httpx.AsyncClient, session: AsyncSession, calls: Calls
) -> None:
    m = await market(client, session)
    order = await checkout(client, m.slug, [(m.variant, 1)])
    other = await checkout(client, m.slug, [(m.variant, 1)])
    for headers in ({}, {"X-Order-Token": other["access_token"]}, m.keeper.headers):
        refused = await client.post(f"/v1/orders/{order['id']}/payment", headers=headers)
        assert_problem(refused, 404, "order_not_found")
    missing = await client.post(
        f"/v1/orders/{uuid.uuid4()}/payment", headers={"X-Order-Token": order["access_token"]}
    )
    assert_problem(missing, 404, "order_not_found")
    assert calls.refs == []


async def test_a_checkout_run_again_calls_no_provider_and_its_payment_opens_once(
    live: Live, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    """Checkout's work runs again when its one statement finds the stock or price moved (as in
    test_concurrency's price change): a provider asked from inside it would be asked each
    time. It is asked only when the buyer asks to pay, once."""
    async with live.sessionmaker() as session:
        m = await market(live.client, session, stock=5)
    runs: list[int] = []
    real = service.checkout

    async def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "checkout", counted)
    async with live.sessionmaker() as supplier, supplier.begin():
        await supplier.execute(
            text("UPDATE variants SET price_minor = 20000 WHERE id = :id"), {"id": m.variant}
        )
        pending = asyncio.create_task(place(live.client, m.slug, [(m.variant, 1)]))
        await asyncio.sleep(0.5)
        assert not pending.done()  # read the old price, and queued on the variant's lock
    placed = await pending
    assert placed.status_code == 201, placed.text
    assert len(runs) == 2  # run again on the new price
    assert calls.refs == []
    order = placed.json()

    assert live.settings.database_url is not None
    dsn = live.settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def open_transactions() -> int:
        """The database's other sessions inside a transaction now: the app's, if any."""
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                )
            )
        finally:
            await conn.close()

    calls.probe = open_transactions
    first = await ask_to_pay(live.client, order)
    again = await ask_to_pay(live.client, order)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json() == again.json()
    assert calls.per_order == {order["payment"]["provider_ref"]: 1}
    assert calls.probed == [0]  # the claim committed before the call, the record after it
