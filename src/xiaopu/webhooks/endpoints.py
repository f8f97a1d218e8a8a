"""Routes for a supplier's webhook endpoints, events, delivery attempts and replays."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.webhooks import service
from xiaopu.webhooks.auth import WebhookManager
from xiaopu.webhooks.catalogue import Owner
from xiaopu.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventOut,
    ReplayRequest,
    SecretRotation,
)

router = APIRouter(prefix="/v1/suppliers/{supplier_id}", tags=["webhooks"])


@router.post(
    "/webhook-endpoints",
    status_code=status.HTTP_201_CREATED,
    operation_id="webhooks-create_webhook_endpoint",
)
async def create_webhook_endpoint(
    supplier_id: uuid.UUID,
    body: EndpointCreate,
    caller: WebhookManager,
    session: DbSession,
    settings: AppSettings,
) -> EndpointWithSecret:
    """Add an endpoint for the event types named, among those a supplier receives (422
    `event_type_not_available` otherwise); at most 16 a supplier (409
    `too_many_webhook_endpoints` beyond). Its signing secret is shown in this answer only."""
    return await service.create_endpoint(
        session,
        Owner.supplier(caller.supplier_id),
        body,
        allow_http=settings.webhook_allow_loopback,
    )


@router.get("/webhook-endpoints", operation_id="webhooks-list_webhook_endpoints")
async def list_webhook_endpoints(
    supplier_id: uuid.UUID, caller: WebhookManager, session: DbSession, page: Pagination
) -> Page[EndpointOut]:
    return await service.list_endpoints(session, Owner.supplier(caller.supplier_id), page)


@router.get("/webhook-endpoints/{endpoint_id}", operation_id="webhooks-get_webhook_endpoint")
async def get_webhook_endpoint(
    supplier_id: uuid.UUID, endpoint_id: uuid.UUID, caller: WebhookManager, session: DbSession
) -> EndpointOut:
    return await service.get_endpoint(session, Owner.supplier(caller.supplier_id), endpoint_id)


@router.patch("/webhook-endpoints/{endpoint_id}", operation_id="webhooks-update_webhook_endpoint")
async def update_webhook_endpoint(
    supplier_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    caller: WebhookManager,
    session: DbSession,
    settings: AppSettings,
) -> EndpointOut:
    return await service.update_endpoint(
        session,
        Owner.supplier(caller.supplier_id),
        endpoint_id,
        body,
        allow_http=settings.webhook_allow_loopback,
    )


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="webhooks-delete_webhook_endpoint",
)
async def delete_webhook_endpoint(
    supplier_id: uuid.UUID, endpoint_id: uuid.UUID, caller: WebhookManager, session: DbSession
) -> Response:
    await service.delete_endpoint(session, Owner.supplier(caller.supplier_id), endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret", operation_id="webhooks-rotate_webhook_secret"
)
async def rotate_webhook_secret(
    supplier_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: SecretRotation,
    caller: WebhookManager,
    session: DbSession,
) -> EndpointWithSecret:
    return await service.rotate_secret(
        session, Owner.supplier(caller.supplier_id), endpoint_id, body
    )


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries", operation_id="webhooks-list_webhook_deliveries"
)
async def list_webhook_deliveries(
    supplier_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    caller: WebhookManager,
    session: DbSession,
    page: Pagination,
) -> Page[DeliveryOut]:
    return await service.list_deliveries(
        session, Owner.supplier(caller.supplier_id), endpoint_id, page
    )


@router.get(
    "/webhook-endpoints/{endpoint_id}/attempts", operation_id="webhooks-list_webhook_attempts"
)
async def list_webhook_attempts(
    supplier_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    caller: WebhookManager,
    session: DbSession,
    page: Pagination,
) -> Page[AttemptOut]:
    return await service.list_attempts(
        session, Owner.supplier(caller.supplier_id), endpoint_id, page
    )


@router.get("/events", operation_id="webhooks-list_events")
async def list_events(
    supplier_id: uuid.UUID, caller: WebhookManager, session: DbSession, page: Pagination
) -> Page[EventOut]:
    return await service.list_events(session, Owner.supplier(caller.supplier_id), page)


@router.post(
    "/events/{event_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="webhooks-replay_event",
)
async def replay_event(
    supplier_id: uuid.UUID,
    event_id: uuid.UUID,
    body: ReplayRequest,
    caller: WebhookManager,
    session: DbSession,
) -> list[DeliveryOut]:
    return await service.replay(
        session, Owner.supplier(caller.supplier_id), event_id, body.endpoint_id
    )
