"""Queries for ledger accounts, transactions and entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, Uuid, cast, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.ids import new_id
from xiaopu.models.ledger import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    OwnerKind,
    Purpose,
)

AccountKey = tuple[OwnerKind, uuid.UUID, Purpose, str]


async def account_ids(
    session: AsyncSession, keys: Sequence[AccountKey]
) -> dict[AccountKey, uuid.UUID]:
    """Ids of these accounts, opening the missing ones (a concurrent opener is harmless)."""
    wanted = set(keys)
    found = await _existing(session, wanted)
    missing = wanted - found.keys()
    if missing:
        # Sorted: two transactions opening the same accounts lock them in one order.
        ordered = sorted(missing)
        await session.execute(
            text(
                "INSERT INTO ledger_accounts (id, owner_kind, owner_id, purpose, currency, "
                "balance_minor, created_at) SELECT id, kind, owner, purpose, currency, "
                "CASE WHEN kind = 'platform' THEN NULL ELSE 0 END, now() "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:kinds AS text[]), "
                "CAST(:owners AS uuid[]), CAST(:purposes AS text[]), CAST(:currencies AS text[])) "
                "AS t(id, kind, owner, purpose, currency) ON CONFLICT DO NOTHING"
            ),
            {
                "ids": [new_id() for _ in ordered],
                "kinds": [str(k[0]) for k in ordered],
                "owners": [k[1] for k in ordered],
                "purposes": [str(k[2]) for k in ordered],
                "currencies": [k[3] for k in ordered],
            },
        )
        found.update(await _existing(session, missing))
    return found


async def _existing(session: AsyncSession, keys: set[AccountKey]) -> dict[AccountKey, uuid.UUID]:
    owners = sorted({k[1] for k in keys})
    rows = await session.execute(
        select(
            LedgerAccount.id,
            LedgerAccount.owner_kind,
            LedgerAccount.owner_id,
            LedgerAccount.purpose,
            LedgerAccount.currency,
        ).where(LedgerAccount.owner_id == func.any(cast(owners, ARRAY(Uuid()))))
    )
    out = {}
    for row in rows:
        key = (row.owner_kind, row.owner_id, row.purpose, row.currency)
        if key in keys:
            out[key] = row.id
    return out


async def claim_transaction(
    session: AsyncSession, kind: str, cause: str, memo: str | None, reverses_id: uuid.UUID | None
) -> uuid.UUID | None:
    """Start a transaction for `cause`; None if that cause was posted before."""
    stmt = (
        pg_insert(LedgerTransaction)
        .values(id=new_id(), kind=kind, cause=cause, memo=memo, reverses_id=reverses_id)
        .on_conflict_do_nothing(index_elements=["cause"])
        .returning(LedgerTransaction.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_entries(
    session: AsyncSession, transaction_id: uuid.UUID, currency: str, amounts: dict[uuid.UUID, int]
) -> None:
    """All of a transaction's entries in one statement: the balance check runs once, at its end."""
    await lock_counted(session, list(amounts))
    await session.execute(
        pg_insert(LedgerEntry).values(
            [
                {
                    "id": new_id(),
                    "transaction_id": transaction_id,
                    "account_id": account_id,
                    "amount_minor": amount,
                    "currency": currency,
                }
                for account_id, amount in sorted(amounts.items())
            ]
        )
    )
    # Counters move in the same transaction; platform accounts (NULL) keep none.
    await session.execute(
        text(
            "UPDATE ledger_accounts SET balance_minor = balance_minor + d.amount "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:amounts AS bigint[])) AS d(id, amount) "
            "WHERE ledger_accounts.id = d.id AND balance_minor IS NOT NULL"
        ),
        {"ids": sorted(amounts), "amounts": [amounts[k] for k in sorted(amounts)]},
    )


def kept_balances_statement(
    owner_kind: OwnerKind, owner_id: uuid.UUID
) -> Select[Purpose, str, int | None]:
    """(purpose, currency, balance) of an owner's counted accounts, read from the counters every
    posting keeps under lock (reconciliation checks them against the entries): one index probe
    on the accounts' unique key, whatever the number of entries."""
    return (
        select(LedgerAccount.purpose, LedgerAccount.currency, LedgerAccount.balance_minor)
        .where(
            LedgerAccount.owner_kind == owner_kind,
            LedgerAccount.owner_id == owner_id,
            LedgerAccount.balance_minor.is_not(None),
        )
        .order_by(LedgerAccount.currency, LedgerAccount.purpose)
    )


async def balances(
    session: AsyncSession, owner_kind: OwnerKind, owner_id: uuid.UUID
) -> Sequence[tuple[Purpose, str, int]]:
    """(purpose, currency, balance) of an owner's accounts: kept counters for shops and
    suppliers; the platform's accounts keep none (one counter row would serialise every
    checkout), so theirs are summed from the entries."""
    if owner_kind is not OwnerKind.platform:
        rows = await session.execute(kept_balances_statement(owner_kind, owner_id))
        return [(Purpose(r.purpose), str(r.currency), int(r.balance_minor)) for r in rows]
    summed = await session.execute(
        text(
            "SELECT a.purpose, a.currency, coalesce(sum(e.amount_minor), 0) AS balance "
            "FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id "
            "WHERE a.owner_kind = :kind AND a.owner_id = :owner "
            "GROUP BY a.purpose, a.currency ORDER BY a.currency, a.purpose"
        ),
        {"kind": str(owner_kind), "owner": owner_id},
    )
    return [(Purpose(r.purpose), str(r.currency), int(r.balance)) for r in summed]


async def counter_mismatches(session: AsyncSession) -> Sequence[tuple[uuid.UUID, int, int]]:
    """Accounts whose kept counter differs from the sum of their entries."""
    rows = await session.execute(
        text(
            "SELECT a.id, a.balance_minor, coalesce(s.total, 0) AS total FROM ledger_accounts a "
            "LEFT JOIN (SELECT account_id, sum(amount_minor) AS total FROM ledger_entries "
            "GROUP BY account_id) s ON s.account_id = a.id "
            "WHERE a.balance_minor IS NOT NULL AND a.balance_minor <> coalesce(s.total, 0)"
        )
    )
    return [(r.id, int(r.balance_minor), int(r.total)) for r in rows]


async def unbalanced_transactions(session: AsyncSession) -> int:
    value = await session.scalar(
        text(
            "SELECT count(*) FROM (SELECT 1 FROM ledger_entries GROUP BY transaction_id, currency "
            "HAVING sum(amount_minor) <> 0) t"
        )
    )
    return int(value or 0)


async def lock_counter(session: AsyncSession, key: AccountKey) -> int:
    """Lock one counted account and read its balance (0 if it was never opened)."""
    kind, owner, purpose, currency = key
    stmt = (
        select(LedgerAccount.balance_minor)
        .where(
            LedgerAccount.owner_kind == kind,
            LedgerAccount.owner_id == owner,
            LedgerAccount.purpose == purpose,
            LedgerAccount.currency == currency,
        )
        .with_for_update()
    )
    return int(await session.scalar(stmt) or 0)


async def lock_counted(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> None:
    """Lock the counted accounts among these in id order, the one order every posting takes
    them in, so concurrent postings queue instead of deadlocking."""
    await session.execute(
        text(
            "SELECT 1 FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[])) "
            "AND balance_minor IS NOT NULL ORDER BY id FOR UPDATE"
        ),
        {"ids": sorted(account_ids)},
    )


async def claim_transactions(
    session: AsyncSession, kind: str, causes: Sequence[str]
) -> dict[str, uuid.UUID]:
    """Start one transaction per cause in one statement; causes posted before are left out."""
    rows = await session.execute(
        text(
            "INSERT INTO ledger_transactions (id, kind, cause, created_at) "
            "SELECT id, :kind, cause, now() FROM unnest(CAST(:ids AS uuid[]), "
            "CAST(:causes AS text[])) AS t(id, cause) "
            "ON CONFLICT (cause) DO NOTHING RETURNING id, cause"
        ),
        {"kind": kind, "ids": [new_id() for _ in causes], "causes": list(causes)},
    )
    return {row.cause: row.id for row in rows}


async def add_many_entries(
    session: AsyncSession, entries: Sequence[tuple[uuid.UUID, uuid.UUID, int, str]]
) -> None:
    """(transaction, account, amount, currency) rows in one statement, counters in another."""
    accounts = sorted({e[1] for e in entries})
    await lock_counted(session, accounts)
    await session.execute(
        text(
            "INSERT INTO ledger_entries (id, transaction_id, account_id, amount_minor, currency, "
            "created_at) SELECT * , now() FROM unnest(CAST(:ids AS uuid[]), "
            "CAST(:transactions AS uuid[]), CAST(:accounts AS uuid[]), "
            "CAST(:amounts AS bigint[]), CAST(:currencies AS text[]))"
        ),
        {
            "ids": [new_id() for _ in entries],
            "transactions": [e[0] for e in entries],
            "accounts": [e[1] for e in entries],
            "amounts": [e[2] for e in entries],
            "currencies": [e[3] for e in entries],
        },
    )
    totals: dict[uuid.UUID, int] = {}
    for _, account, amount, _ in entries:
        totals[account] = totals.get(account, 0) + amount
    await session.execute(
        text(
            "UPDATE ledger_accounts SET balance_minor = balance_minor + d.amount "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:amounts AS bigint[])) AS d(id, amount) "
            "WHERE ledger_accounts.id = d.id AND balance_minor IS NOT NULL"
        ),
        {"ids": accounts, "amounts": [totals[a] for a in accounts]},
    )


async def transaction_id(session: AsyncSession, cause: str) -> uuid.UUID | None:
    stmt = select(LedgerTransaction.id).where(LedgerTransaction.cause == cause)
    return (await session.execute(stmt)).scalar_one_or_none()
