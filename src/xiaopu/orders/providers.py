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


def merchant_ref(order_id: uuid.UUID) -> str:
    """Our reference for an order's payment, which the provider files it under: the order id's
    32 hex digits, a merchant order number as WeChat Pay's out_trade_no (at most 32 characters)
    or Alipay's. Made from the order id, so asking the provider twice names one payment."""
    return order_id.hex


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """A payment the provider opened: where the buyer completes it."""

    pay_url: str


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


class ProviderUnavailable(AppError):
    """What a provider raises when it cannot be reached or refuses to open a payment: nothing
    was recorded, and asking again is safe (the call is idempotent on the reference)."""

    status = 502
    code = "payment_provider_unavailable"
    title = "The payment provider did not answer; retry shortly"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class PaymentProvider(Protocol):
    name: str

    async def create_payment(
        self, payment_ref: str, amount_minor: int, currency: str, expires_at: datetime
    ) -> PaymentIntent:
        """Open the payment filed under `payment_ref` (merchant_ref of its order), which the
        buyer completes with the provider until `expires_at`. Idempotent on `payment_ref`:
        asking twice opens one payment and answers with it. Never called inside a transaction
        or inside work that may run again (orders/payments.py open_payment)."""

    def parse_callback(self, headers: dict[str, str], body: bytes) -> ProviderCallback:
        """Verify a callback's signature and read it; raises InvalidCallbackSignature."""

    async def refund(
        self, payment_ref: str, refund_id: uuid.UUID, amount_minor: int, currency: str
    ) -> RefundOutcome:
        """Ask for a refund. `refund_id` is the provider-side idempotency key: asking twice
        for one refund refunds once. Never called inside a transaction or inside work that
        may run again (orders/payments.py send_refund_in_steps); tests alone use send_refund."""


class SandboxProvider:
    """Behaves like a real provider: callbacks are Standard Webhooks-signed and verified;
    refunds succeed at once. Unlike one, it keeps no books of its own: it takes payment for any
    payment we recorded, opened or not (tests pay straight after checkout)."""

    name = "sandbox"

    def __init__(self, settings: Settings) -> None:
        self._webhook = Webhook(settings.payment_callback_secret.get_secret_value())
        self._base_url = settings.public_base_url.rstrip("/")

    async def create_payment(
        self, payment_ref: str, amount_minor: int, currency: str, expires_at: datetime
    ) -> PaymentIntent:
        # The pay page is made from the reference alone, so a repeat answers the same page.
        # It takes payment even after expires_at, so a late payment's refund can be played.
        return PaymentIntent(f"{self._base_url}/v1/sandbox/payments/{payment_ref}/pay")

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
