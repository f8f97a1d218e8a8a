"""The event types, who receives each, and who may own the endpoints that receive them."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from xiaopu.models import WebhookOwnerKind


class EventType(enum.StrEnum):
    api_key_created = "api_key.created"
    api_key_revoked = "api_key.revoked"
    order_placed = "order.placed"
    order_paid = "order.paid"
    order_expired = "order.expired"
    supplier_order_paid = "supplier_order.paid"
    supplier_order_accepted = "supplier_order.accepted"
    supplier_order_shipped = "supplier_order.shipped"
    supplier_order_delivered = "supplier_order.delivered"
    supplier_order_cancelled = "supplier_order.cancelled"
    supplier_order_completed = "supplier_order.completed"
    return_requested = "return.requested"
    return_decided = "return.decided"
    refund_succeeded = "refund.succeeded"
    refund_failed = "refund.failed"
    product_stock_low = "product.stock_low"
    payout_paid = "payout.paid"
    payout_failed = "payout.failed"
    supplier_payout_paid = "supplier_payout.paid"
    supplier_payout_failed = "supplier_payout.failed"
    commission_accrued = "commission.accrued"
    commission_available = "commission.available"
    commission_reversed = "commission.reversed"
    shop_promoted = "shop.promoted"
    recommendation_invited = "recommendation.invited"
    campaign_scheduled = "campaign.scheduled"
    campaign_warm_up = "campaign.warm_up"
    campaign_starting = "campaign.starting"
    campaign_live = "campaign.live"
    campaign_ended = "campaign.ended"
    campaign_budget_exhausted = "campaign.budget_exhausted"
    organisation_notice = "organisation.notice"


# A campaign's events go to its supplier and to every application (the app tells the shops).
CAMPAIGN_EVENTS = frozenset(
    {
        EventType.campaign_scheduled,
        EventType.campaign_warm_up,
        EventType.campaign_starting,
        EventType.campaign_live,
        EventType.campaign_ended,
        EventType.campaign_budget_exhausted,
    }
)


# Events about one supplier, owned by it: delivered to that supplier's endpoints only.
SUPPLIER_EVENTS = frozenset(
    {
        EventType.api_key_created,
        EventType.api_key_revoked,
        EventType.supplier_order_paid,
        EventType.supplier_order_accepted,
        EventType.supplier_order_shipped,
        EventType.supplier_order_delivered,
        EventType.supplier_order_cancelled,
        EventType.supplier_order_completed,
        EventType.return_requested,
        EventType.return_decided,
        EventType.refund_succeeded,
        EventType.refund_failed,
        EventType.product_stock_low,
        EventType.supplier_payout_paid,
        EventType.supplier_payout_failed,
        *CAMPAIGN_EVENTS,
    }
)
# Events about shops and buyers: delivered to the endpoints of every active application, whoever
# owns them (a refund's owner is the supplier whose order it refunds, which hears of it too).
APPLICATION_EVENTS = frozenset(
    {
        EventType.order_placed,
        EventType.order_paid,
        EventType.order_expired,
        EventType.refund_succeeded,
        EventType.refund_failed,
        EventType.payout_paid,
        EventType.payout_failed,
        EventType.commission_accrued,
        EventType.commission_available,
        EventType.commission_reversed,
        EventType.shop_promoted,
        EventType.recommendation_invited,
        # A partner organisation's notice to its cohort (owned by the organisation): the app
        # tells the cohort's shops, which read it at GET /v1/shops/mine/notices.
        EventType.organisation_notice,
        *CAMPAIGN_EVENTS,
    }
)

# What an endpoint of each kind of owner may subscribe to: what it can ever receive.
SUBSCRIBABLE = {
    WebhookOwnerKind.supplier: SUPPLIER_EVENTS,
    WebhookOwnerKind.application: APPLICATION_EVENTS,
}


@dataclass(frozen=True, slots=True)
class Owner:
    """Whoever owns webhook endpoints: every endpoint, delivery and event read is scoped to one."""

    kind: WebhookOwnerKind
    id: uuid.UUID

    @classmethod
    def supplier(cls, supplier_id: uuid.UUID) -> Owner:
        return cls(WebhookOwnerKind.supplier, supplier_id)

    @classmethod
    def application(cls, application_id: uuid.UUID) -> Owner:
        return cls(WebhookOwnerKind.application, application_id)
