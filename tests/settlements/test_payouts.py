"""Supplier payouts: claim, call, record; a worker that dies after claiming, or after the
provider paid, is finished by a later run without paying twice; failure, events and retry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import assert_problem
from tests.catalogue.helpers import operator
from tests.factories import supplier
from tests.orders.helpers import events, key
from tests.settlements.helpers import sandbox_keys, supplier_balance
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.ledger import service as ledger
from xiaopu.ledger.service import Leg
from xiaopu.models.ledger import PLATFORM_ID, OwnerKind, Purpose
from xiaopu.payouts.providers import Payee, PayoutOutcome, payout_provider
from xiaopu.settlements import payouts, service

MONDAY = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
NEXT_MONDAY = MONDAY + timedelta(weeks=1)


class Unreachable:
    """A provider whose every call fails on the way (a network outage)."""

    name = "unreachable"

    async def pay(self, key: str, payee: Payee, amount_minor: int, currency: str) -> PayoutOutcome:
        raise ConnectionError("provider unreachable")

    async def lookup(self, key: str) -> PayoutOutcome | None:
        raise ConnectionError("provider unreachable")


@dataclass
class CountingProvider:
    """The sandbox, counting what it is asked; refuses the keys in `refuse` (as a bank would
    refuse an account) without recording them."""

    settings: Settings
    refuse: set[str] = field(default_factory=set)
    paid: list[str] = field(default_factory=list)
    looked_up: list[str] = field(default_factory=list)
    name: str = "counting"

    async def pay(self, key: str, payee: Payee, amount_minor: int, currency: str) -> PayoutOutcome:
        self.paid.append(key)
        if key in self.refuse:
            return PayoutOutcome(False, f"refused-{key}", "the account was closed")
        return await payout_provider(self.settings).pay(key, payee, amount_minor, currency)

    async def lookup(self, key: str) -> PayoutOutcome | None:
        self.looked_up.append(key)
        return await payout_provider(self.settings).lookup(key)


async def _settled(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, amount: int
) -> tuple[str, dict[str, str], uuid.UUID]:
    """A supplier with `amount` CNY payable (posted straight to the ledger as a completion
    would), its week closed: (supplier id, owner's headers, payout id)."""
    supplier_id, owner = await supplier(client)
    await ledger.post(
        session,
        kind="test_credit",
        cause=f"test:{uuid.uuid4()}",
        currency="CNY",
        legs=[
            Leg(OwnerKind.platform, PLATFORM_ID, Purpose.clearing, amount),
            Leg(OwnerKind.supplier, uuid.UUID(supplier_id), Purpose.payable, -amount),
        ],
    )
    closed = await service.close_due(session, settings, NEXT_MONDAY)
    assert closed.settlements >= 1
    await session.commit()
    payout_id = await session.scalar(
        text("SELECT id FROM supplier_payouts WHERE supplier_id = :s"), {"s": supplier_id}
    )
    assert payout_id is not None
    return supplier_id, owner, payout_id


async def _status(session: AsyncSession, payout_id: uuid.UUID) -> tuple[str, int]:
    row = (
        await session.execute(
            text("SELECT status, attempts FROM supplier_payouts WHERE id = :p"), {"p": payout_id}
        )
    ).one()
    return str(row[0]), int(row[1])


async def test_a_movement_other_than_a_sale_is_an_adjustment_line(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, test_clock: Clock
) -> None:
    test_clock.freeze(MONDAY)
    supplier_id, owner, _ = await _settled(client, session, settings, 4_321)
    (listed,) = (
        await client.get(f"/v1/suppliers/{supplier_id}/settlements", headers=owner)
    ).json()["items"]
    detail = (
        await client.get(f"/v1/suppliers/{supplier_id}/settlements/{listed['id']}", headers=owner)
    ).json()
    (line,) = detail["lines"]
    assert (line["kind"], line["other_minor"], line["net_minor"]) == ("adjustment", 4_321, 4_321)
    assert detail["other_minor"] == detail["payout_minor"] == 4_321


async def test_a_worker_that_died_after_claiming_is_finished_by_a_later_run(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze(MONDAY)
    supplier_id, _, payout_id = await _settled(client, session, settings, 5_000)
    test_clock.freeze(NEXT_MONDAY)
    async with sessionmaker() as claiming, claiming.begin():
        (claimed,) = await payouts.claim(claiming)
    # ... and the worker died before calling the provider.
    provider = CountingProvider(settings)
    soon = await payouts.pay_supplier_payouts(sessionmaker, settings, provider=provider)
    assert (soon.paid, provider.paid) == (0, [])  # a live claim is left alone
    assert await _status(session, payout_id) == ("processing", 1)

    test_clock.advance(payouts.CLAIM_LEASE + timedelta(seconds=1))
    run = await payouts.pay_supplier_payouts(sessionmaker, settings, provider=provider)
    assert (run.recovered, run.paid) == (1, 1)
    assert provider.looked_up == provider.paid == [claimed.key]  # asked first, then paid
    assert await _status(session, payout_id) == ("paid", 1)
    assert await sandbox_keys(session, supplier_id) == [f"supplier_payout:{payout_id}:1"]
    assert await supplier_balance(session, supplier_id, Purpose.payable_settling) == 0
    assert await ledger.reconcile(session) == 0


async def test_a_worker_that_died_after_the_provider_paid_does_not_pay_twice(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze(MONDAY)
    supplier_id, _, payout_id = await _settled(client, session, settings, 7_000)
    test_clock.freeze(NEXT_MONDAY)
    async with sessionmaker() as claiming, claiming.begin():
        (claimed,) = await payouts.claim(claiming)
    outcome = await payouts.send(payout_provider(settings), claimed)
    assert outcome.succeeded
    # ... and the worker died before recording: the money left, the books do not say so.
    assert await supplier_balance(session, supplier_id, Purpose.payable_settling) == 7_000

    test_clock.advance(payouts.CLAIM_LEASE + timedelta(seconds=1))
    provider = CountingProvider(settings)
    run = await payouts.pay_supplier_payouts(sessionmaker, settings, provider=provider)
    assert (run.recovered, run.paid) == (1, 1)
    assert (provider.looked_up, provider.paid) == ([claimed.key], [])  # read back, not paid
    assert await sandbox_keys(session, supplier_id) == [claimed.key]
    assert await _status(session, payout_id) == ("paid", 1)
    assert await supplier_balance(session, supplier_id, Purpose.payable_settling) == 0
    (paid,) = await events(session, "supplier_payout.paid")
    assert paid["supplier_payout_id"] == str(payout_id)
    # Recording twice records nothing more.
    async with sessionmaker() as late, late.begin():
        assert await payouts.record(late, claimed, outcome) is False
    assert await ledger.reconcile(session) == 0


async def test_a_failed_payout_waits_in_settlement_and_is_retried(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze(MONDAY)
    supplier_id, owner, payout_id = await _settled(client, session, settings, 6_000)
    first_key = payouts.payout_key(payout_id, 1)
    provider = CountingProvider(settings, refuse={first_key})
    run = await payouts.pay_supplier_payouts(sessionmaker, settings, provider=provider)
    assert (run.paid, run.failed) == (0, 1)
    (failed,) = await events(session, "supplier_payout.failed")
    assert (failed["supplier_payout_id"], failed["attempt"]) == (str(payout_id), 1)
    assert failed["failure_reason"] == "the account was closed"
    assert (failed["settlement_number"], failed["first_day"]) == (1, "2026-11-30")
    # The money waits in settlement; nothing else moved.
    assert await supplier_balance(session, supplier_id, Purpose.payable_settling) == 6_000
    assert await supplier_balance(session, supplier_id, Purpose.payable) == 0

    path = f"/v1/suppliers/{supplier_id}/settlement-payouts/{payout_id}/retry"
    assert_problem(await client.post(path, headers=owner), 400, "idempotency_key_missing")
    retried = await client.post(path, headers={**owner, **key()})
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "pending"
    again = await client.post(path, headers={**owner, **key()})
    assert_problem(again, 409, "supplier_payout_not_retryable")
    stranger, stranger_owner = await supplier(client)
    not_theirs = await client.post(path, headers={**stranger_owner, **key()})
    assert_problem(not_theirs, 404, "supplier_not_found")
    foreign = await client.post(
        f"/v1/suppliers/{stranger}/settlement-payouts/{payout_id}/retry",
        headers={**stranger_owner, **key()},
    )
    assert_problem(foreign, 404, "supplier_payout_not_found")

    # The account is still closed: the second attempt fails too, and an operator sends it
    # a third time (an operator may retry anyone's; a supplier's owner only its own).
    second_key = payouts.payout_key(payout_id, 2)
    provider.refuse.add(second_key)
    run = await payouts.pay_supplier_payouts(sessionmaker, settings, provider=provider)
    assert (run.paid, run.failed) == (0, 1)
    assert await _status(session, payout_id) == ("failed", 2)
    op_path = f"/v1/operator/settlement-payouts/{payout_id}/retry"
    not_operator = await client.post(op_path, headers={**owner, **key()})
    assert_problem(not_operator, 403, "forbidden")
    op = await operator(client, session)
    by_operator = await client.post(op_path, headers={**op.headers, **key()})
    assert by_operator.status_code == 200, by_operator.text

    run = await payouts.pay_supplier_payouts(sessionmaker, settings, provider=provider)
    assert run.paid == 1
    third_key = payouts.payout_key(payout_id, 3)
    assert provider.paid == [first_key, second_key, third_key]
    assert await sandbox_keys(session, supplier_id) == [third_key]  # refusals left no payment
    assert await _status(session, payout_id) == ("paid", 3)
    assert len(await events(session, "supplier_payout.failed")) == 2
    assert await supplier_balance(session, supplier_id, Purpose.payable_settling) == 0
    assert await ledger.reconcile(session) == 0


async def test_a_provider_outage_leaves_the_payout_processing_until_a_later_run(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    test_clock: Clock,
) -> None:
    test_clock.freeze(MONDAY)
    supplier_id, _, payout_id = await _settled(client, session, settings, 3_000)
    run = await payouts.pay_supplier_payouts(sessionmaker, settings, provider=Unreachable())
    assert (run.paid, run.failed, run.unanswered) == (0, 0, 1)
    assert await _status(session, payout_id) == ("processing", 1)
    assert await sandbox_keys(session, supplier_id) == []

    test_clock.advance(payouts.CLAIM_LEASE + timedelta(seconds=1))
    provider = CountingProvider(settings)
    run = await payouts.pay_supplier_payouts(sessionmaker, settings, provider=provider)
    assert (run.recovered, run.paid) == (1, 1)
    assert await sandbox_keys(session, supplier_id) == [payouts.payout_key(payout_id, 1)]
    assert await ledger.reconcile(session) == 0
