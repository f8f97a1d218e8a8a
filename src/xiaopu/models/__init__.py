"""ORM tables, imported together so Alembic sees the whole schema."""

from xiaopu.models.accounts import Account, AccountStatus, RefreshToken
from xiaopu.models.api_keys import ApiKey
from xiaopu.models.applications import Application, ApplicationStatus
from xiaopu.models.audit import AuditAction, AuditRecord
from xiaopu.models.base import Base
from xiaopu.models.catalogue import Category, Product, ProductStatus, Variant
from xiaopu.models.exports import ExportStatus, StatementExport, StatementExportChunk
from xiaopu.models.idempotency import IdempotencyKey
from xiaopu.models.ledger import (
    Commission,
    CommissionEvent,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
)
from xiaopu.models.links import Click, LinkDailyStats, LinkDailyVisitor, ShareLink
from xiaopu.models.operators import Operator, OperatorRole
from xiaopu.models.orders import (
    Attribution,
    Decider,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentCallback,
    PaymentStatus,
    Refund,
    RefundLine,
    RefundReason,
    RefundStatus,
    Return,
    ReturnStatus,
    SupplierOrder,
    SupplierOrderStatus,
)
from xiaopu.models.payouts import PayoutBatch, SandboxPayout, Withdrawal, WithdrawalStatus
from xiaopu.models.settlements import (
    Settlement,
    SettlementClose,
    SettlementLine,
    SettlementLineKind,
    SupplierPayout,
    SupplierPayoutStatus,
)
from xiaopu.models.shops import Shop, ShopLevel, ShopProduct
from xiaopu.models.suppliers import (
    MemberRole,
    PayoutMethod,
    Supplier,
    SupplierMember,
    SupplierStatus,
)
from xiaopu.models.webhooks import (
    DeliveryStatus,
    EndpointStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookOwnerKind,
)

__all__ = [
    "Account",
    "AccountStatus",
    "ApiKey",
    "Application",
    "ApplicationStatus",
    "Attribution",
    "AuditAction",
    "AuditRecord",
    "Base",
    "Category",
    "Click",
    "Commission",
    "CommissionEvent",
    "Decider",
    "DeliveryStatus",
    "EndpointStatus",
    "Event",
    "ExportStatus",
    "IdempotencyKey",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "LinkDailyStats",
    "LinkDailyVisitor",
    "MemberRole",
    "Operator",
    "OperatorRole",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Payment",
    "PaymentCallback",
    "PaymentStatus",
    "PayoutBatch",
    "PayoutMethod",
    "Product",
    "ProductStatus",
    "RefreshToken",
    "Refund",
    "RefundLine",
    "RefundReason",
    "RefundStatus",
    "Return",
    "ReturnStatus",
    "SandboxPayout",
    "Settlement",
    "SettlementClose",
    "SettlementLine",
    "SettlementLineKind",
    "ShareLink",
    "Shop",
    "ShopLevel",
    "ShopProduct",
    "StatementExport",
    "StatementExportChunk",
    "Supplier",
    "SupplierMember",
    "SupplierOrder",
    "SupplierOrderStatus",
    "SupplierPayout",
    "SupplierPayoutStatus",
    "SupplierStatus",
    "Variant",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookOwnerKind",
    "Withdrawal",
    "WithdrawalStatus",
]
