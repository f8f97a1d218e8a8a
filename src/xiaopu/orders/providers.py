"""The payment-provider interface, and the sandbox provider that development and tests pay with."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from xiaopu.config import Settings
from xiaopu.errors import AppError, NotFound
from xiaopu.kit.ids import new_id

# The sandbox refuses refunds of amounts ending in these minor units, so a refused refund can be
# played on purpose.
SANDBOX_FAILING_CENTS = 13


class CallbackKind(enum.StrEnum):
    paid = "paid"
    failed = "failed"
    refunded = "refunded"


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    provider_ref: str
    pay_url: str | None


class ProviderCallback(BaseModel):
    """A provider's callback once its signature is verified, in our words."""

    event_id: str
    kind: CallbackKind
    payment_ref: str
    amount_minor: int
    currency: str
    refund_ref: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    succeeded: bool
    provider_ref: str
    failure_reason: str | None = None


class InvalidCallbackSignature(AppError):
    status = 401
    code = "invalid_callback_signature"
    title = "The callback's signature does not verify"


class InvalidCallback(AppError):
    status = 422
    code = "invalid_callback"
    title = "The callback's body is not one we understand"


class UnknownProvider(NotFound):
    code = "unknown_payment_provider"
    title = "No such payment provider"


class PaymentProvider(Protocol):
    name: str

    def create_payment(
        self, order_id: uuid.UUID, amount_minor: int, currency: str
    ) -> PaymentIntent:
        """Open a payment the buyer completes with the provider."""

    def parse_callback(self, headers: dict[str, str], body: bytes) -> ProviderCallback:
        """Verify a callback's signature and read it; raises InvalidCallbackSignature."""

    async def refund(
        self, payment_ref: str, refund_id: uuid.UUID, amount_minor: int, currency: str
    ) -> RefundOutcome:
        """Ask for a refund. `refund_id` is the provider-side idempotency key: asking twice
        for one refund refunds once."""


class SandboxProvider:
    """Behaves like a real provider: callbacks are Standard Webhooks-signed and verified;
    refunds succeed at once."""

    name = "sandbox"

    def __init__(self, settings: Settings) -> None:
        self._webhook = Webhook(settings.payment_callback_secret.get_secret_value())
        self._base_url = settings.public_base_url.rstrip("/")

    def create_payment(
        self, order_id: uuid.UUID, amount_minor: int, currency: str
    ) -> PaymentIntent:
        ref = f"sbx_pay_{order_id.hex}"
        return PaymentIntent(ref, f"{self._base_url}/v1/sandbox/payments/{ref}/pay")

    def sign_callback(self, callback: ProviderCallback) -> tuple[dict[str, str], bytes]:
        """The headers and body the sandbox sends to our callback endpoint."""
        body = callback.model_dump_json(exclude_none=True)
        # Signed with the wall clock: receivers check the timestamp against their own.
        now = datetime.now(UTC)
        headers = {
            "webhook-id": callback.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(callback.event_id, now, body),
        }
        return headers, body.encode()

    def new_callback(self, kind: CallbackKind, **fields: Any) -> ProviderCallback:
        return ProviderCallback(event_id=f"sbx_evt_{new_id().hex}", kind=kind, **fields)

    def parse_callback(self, headers: dict[str, str], body: bytes) -> ProviderCallback:
        try:
            self._webhook.verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:
            raise InvalidCallbackSignature() from exc
        try:
            callback = ProviderCallback.model_validate(json.loads(body))
        except (ValidationError, ValueError) as exc:
            raise InvalidCallback() from exc
        if callback.event_id != headers.get("webhook-id"):
            raise InvalidCallbackSignature("The signed id and the body's event id differ.")
        return callback

    async def refund(
        self, payment_ref: str, refund_id: uuid.UUID, amount_minor: int, currency: str
    ) -> RefundOutcome:
        ref = f"sbx_re_{refund_id.hex}"
        if amount_minor % 100 == SANDBOX_FAILING_CENTS:
            return RefundOutcome(False, ref, "sandbox: the card issuer refused the refund")
        return RefundOutcome(succeeded=True, provider_ref=ref)


def provider_for(settings: Settings, name: str | None = None) -> PaymentProvider:
    """The provider called `name` (default: the one new orders use)."""
    name = name or settings.payment_provider
    if name == SandboxProvider.name:
        return SandboxProvider(settings)
    raise UnknownProvider(f"No payment provider called {name!r}.")
