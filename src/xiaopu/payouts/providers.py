"""The payout-provider interface, and the sandbox provider development and tests pay out with."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from xiaopu.config import Settings

# The sandbox refuses amounts ending in these minor units, so failures can be played on purpose
# (as card sandboxes do with magic numbers).
SANDBOX_FAILING_CENTS = 13


class PayeeKind(enum.StrEnum):
    shop = "shop"
    supplier = "supplier"
    organisation = "organisation"


@dataclass(frozen=True, slots=True)
class Payee:
    kind: PayeeKind
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class PayoutOutcome:
    succeeded: bool
    provider_ref: str
    failure_reason: str | None = None


class PayoutProvider(Protocol):
    """A provider that moves money out of the platform. Every call is keyed: `key` names one
    payout attempt for ever (e.g. `withdrawal:{id}:{attempt}`), and the provider pays a key at
    most once however often it is asked, answering a repeat with the first outcome."""

    name: str

    async def pay(self, key: str, payee: Payee, amount_minor: int, currency: str) -> PayoutOutcome:
        """Pay `payee`; idempotent on `key`."""

    async def lookup(self, key: str) -> PayoutOutcome | None:
        """What became of `key`: its outcome, or None if the provider never received it (so
        paying it now cannot pay twice)."""


class SandboxPayouts:
    """Behaves like a real provider: it keeps its own record of every key it was asked to pay
    (the table `sandbox_payouts`, written on its own connection and committed at once, as a
    remote provider's books would be), so a payout asked again, or looked up after our side
    crashed, answers what happened instead of paying twice."""

    name = "sandbox"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    async def pay(self, key: str, payee: Payee, amount_minor: int, currency: str) -> PayoutOutcome:
        ref = f"sbx_po_{uuid.uuid5(uuid.NAMESPACE_URL, key).hex}"
        failure = None
        if amount_minor % 100 == SANDBOX_FAILING_CENTS:
            failure = "sandbox: the receiving account refused the transfer"
        conn = await asyncpg.connect(self._dsn)
        try:
            # The first request for a key decides it; a repeat reads that decision back.
            row = await conn.fetchrow(
                "INSERT INTO sandbox_payouts (key, payee_kind, payee_id, amount_minor, currency, "
                "succeeded, provider_ref, failure_reason, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) "
                "ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key "
                "RETURNING succeeded, provider_ref, failure_reason",
                key,
                str(payee.kind),
                payee.id,
                amount_minor,
                currency,
                failure is None,
                ref,
                failure,
            )
        finally:
            await conn.close()
        if row is None:
            raise RuntimeError("INSERT ... ON CONFLICT DO UPDATE returned no row")
        return PayoutOutcome(row["succeeded"], row["provider_ref"], row["failure_reason"])

    async def lookup(self, key: str) -> PayoutOutcome | None:
        conn = await asyncpg.connect(self._dsn)
        try:
            row = await conn.fetchrow(
                "SELECT succeeded, provider_ref, failure_reason FROM sandbox_payouts "
                "WHERE key = $1",
                key,
            )
        finally:
            await conn.close()
        if row is None:
            return None
        return PayoutOutcome(row["succeeded"], row["provider_ref"], row["failure_reason"])


def payout_provider(settings: Settings) -> PayoutProvider:
    """The provider `settings.payout_provider` names (config refuses the sandbox in production
    unless allowed)."""
    if settings.payout_provider != SandboxPayouts.name:
        raise RuntimeError(f"no payout provider called {settings.payout_provider!r}")
    if settings.database_url is None:
        raise RuntimeError("the sandbox payout provider needs XIAOPU_DATABASE_URL")
    return SandboxPayouts(
        settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    )
