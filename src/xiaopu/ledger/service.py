"""Posting to the ledger: balanced, idempotent transactions per cause; balances; reconciliation."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

import structlog
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.ledger import repository
from xiaopu.models.ledger import OwnerKind, Purpose

log = structlog.get_logger(__name__)

RECONCILIATION_MISMATCHES = Gauge(
    "xiaopu_ledger_mismatches",
    "Ledger accounts whose balance counter differs from their entries, plus unbalanced "
    "transactions, at the last reconciliation.",
)


class UnbalancedPosting(Exception):
    """A bug, never a client's doing: a posting whose legs do not sum to zero."""


class AlreadyPosted(Exception):
    """A bug: a cause posted twice where the caller had already changed state for it."""


@dataclass(frozen=True, slots=True)
class Leg:
    owner_kind: OwnerKind
    owner_id: uuid.UUID
    purpose: Purpose
    amount_minor: int  # debit positive, credit negative


async def post(
    session: AsyncSession,
    *,
    kind: str,
    cause: str,
    currency: str,
    legs: list[Leg],
    memo: str | None = None,
    reverses_id: uuid.UUID | None = None,
    replay_ok: bool = False,
) -> uuid.UUID | None:
    """Post one balanced transaction for `cause`, once. A cause posted before posts nothing:
    None when `replay_ok`, else AlreadyPosted (the caller changed state it must roll back).
    Legs on the same account are netted; zero legs are dropped."""
    net: dict[tuple[OwnerKind, uuid.UUID, Purpose, str], int] = defaultdict(int)
    for leg in legs:
        net[(leg.owner_kind, leg.owner_id, leg.purpose, currency)] += leg.amount_minor
    if sum(net.values()) != 0:
        raise UnbalancedPosting(f"{cause}: legs sum to {sum(net.values())}")
    net = {key: amount for key, amount in net.items() if amount}
    transaction_id = await repository.claim_transaction(session, kind, cause, memo, reverses_id)
    if transaction_id is None:
        if replay_ok:
            return None
        raise AlreadyPosted(cause)
    if not net:
        return transaction_id
    ids = await repository.account_ids(session, list(net))
    await repository.add_entries(
        session, transaction_id, currency, {ids[key]: amount for key, amount in net.items()}
    )
    return transaction_id


async def balances(
    session: AsyncSession, owner_kind: OwnerKind, owner_id: uuid.UUID
) -> dict[str, dict[Purpose, int]]:
    """currency -> purpose -> balance (debit positive) of an owner's accounts."""
    out: dict[str, dict[Purpose, int]] = defaultdict(dict)
    for purpose, currency, balance in await repository.balances(session, owner_kind, owner_id):
        out[currency][purpose] = balance
    return dict(out)


async def reconcile(session: AsyncSession) -> int:
    """Check every kept counter against its entries and every transaction's balance; log and
    expose what disagrees. Returns the number of problems."""
    mismatches = await repository.counter_mismatches(session)
    unbalanced = await repository.unbalanced_transactions(session)
    for account_id, counter, total in mismatches:
        log.error(
            "ledger.counter_mismatch", account_id=str(account_id), counter=counter, entries=total
        )
    if unbalanced:
        log.error("ledger.unbalanced_transactions", count=unbalanced)
    RECONCILIATION_MISMATCHES.set(len(mismatches) + unbalanced)
    return len(mismatches) + unbalanced


async def lock_balance(
    session: AsyncSession,
    owner_kind: OwnerKind,
    owner_id: uuid.UUID,
    purpose: Purpose,
    currency: str,
) -> int:
    """The balance of a counted account, locked until the transaction ends: the way to check
    funds and then move them without another transaction moving them in between."""
    return await repository.lock_counter(session, (owner_kind, owner_id, purpose, currency))


AccountKey = tuple[OwnerKind, uuid.UUID, Purpose, str]


async def lock_accounts(session: AsyncSession, keys: list[AccountKey]) -> None:
    """Open and lock, in one global order, every account a unit of work will post to. Call it
    before the first of several postings in one transaction (a payment of a multi-supplier
    order, a completion batch): postings one by one would take the locks in business order
    and deadlock with another transaction taking them in another."""
    ids = await repository.account_ids(session, sorted(set(keys)))
    await repository.lock_counted(session, list(ids.values()))


@dataclass(frozen=True, slots=True)
class Posting:
    cause: str
    currency: str
    legs: list[Leg]


async def post_many(session: AsyncSession, *, kind: str, postings: list[Posting]) -> int:
    """post() for many causes at once, in a handful of statements whatever their number (the
    completion job releases thousands of supplier orders a run). Every cause must be new."""
    if not postings:
        return 0
    nets: list[tuple[Posting, dict[AccountKey, int]]] = []
    keys: set[AccountKey] = set()
    for posting in postings:
        net: dict[AccountKey, int] = defaultdict(int)
        for leg in posting.legs:
            net[(leg.owner_kind, leg.owner_id, leg.purpose, posting.currency)] += leg.amount_minor
        if sum(net.values()) != 0:
            raise UnbalancedPosting(f"{posting.cause}: legs sum to {sum(net.values())}")
        net = {k: v for k, v in net.items() if v}
        keys.update(net)
        nets.append((posting, net))
    claimed = await repository.claim_transactions(session, kind, [p.cause for p in postings])
    if len(claimed) != len(postings):
        raise AlreadyPosted(next(p.cause for p in postings if p.cause not in claimed))
    ids = await repository.account_ids(session, sorted(keys))
    entries = [
        (claimed[posting.cause], ids[key], amount, posting.currency)
        for posting, net in nets
        for key, amount in net.items()
    ]
    if entries:
        await repository.add_many_entries(session, entries)
    return len(postings)


async def transaction_for(session: AsyncSession, cause: str) -> uuid.UUID | None:
    """The transaction posted for a cause, for a correction that points at what it reverses."""
    return await repository.transaction_id(session, cause)
