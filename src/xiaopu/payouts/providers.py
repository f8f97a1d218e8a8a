"""The payout-provider interface, and the sandbox provider development and tests pay out with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

# The sandbox refuses amounts ending in these minor units, so failures can be played on purpose
# (as card sandboxes do with magic numbers).
SANDBOX_FAILING_CENTS = 13


@dataclass(frozen=True, slots=True)
class PayoutOutcome:
    succeeded: bool
    provider_ref: str
    failure_reason: str | None = None


class PayoutProvider(Protocol):
    name: str

    async def pay(
        self,
        withdrawal_id: uuid.UUID,
        attempt: int,
        shop_id: uuid.UUID,
        amount_minor: int,
        currency: str,
    ) -> PayoutOutcome:
        """Pay a shopkeeper. (withdrawal id, attempt) is the provider-side idempotency key."""


class SandboxPayouts:
    name = "sandbox"

    async def pay(
        self,
        withdrawal_id: uuid.UUID,
        attempt: int,
        shop_id: uuid.UUID,
        amount_minor: int,
        currency: str,
    ) -> PayoutOutcome:
        ref = f"sbx_po_{withdrawal_id.hex}_{attempt}"
        if amount_minor % 100 == SANDBOX_FAILING_CENTS:
            return PayoutOutcome(False, ref, "sandbox: the receiving account refused the transfer")
        return PayoutOutcome(True, ref)


def payout_provider() -> PayoutProvider:
    return SandboxPayouts()
