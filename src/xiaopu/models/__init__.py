"""ORM tables, imported together so Alembic sees the whole schema."""

from xiaopu.models.accounts import Account, AccountStatus, RefreshToken
from xiaopu.models.api_keys import ApiKey
from xiaopu.models.base import Base
from xiaopu.models.idempotency import IdempotencyKey
from xiaopu.models.operators import Operator, OperatorRole
from xiaopu.models.suppliers import MemberRole, Supplier, SupplierMember, SupplierStatus
from xiaopu.models.webhooks import (
    DeliveryStatus,
    EndpointStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "Account",
    "AccountStatus",
    "ApiKey",
    "Base",
    "DeliveryStatus",
    "EndpointStatus",
    "Event",
    "IdempotencyKey",
    "MemberRole",
    "Operator",
    "OperatorRole",
    "RefreshToken",
    "Supplier",
    "SupplierMember",
    "SupplierStatus",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
