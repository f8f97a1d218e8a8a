"""Operators' routes for platform applications and their webhook endpoints, events and replays."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from xiaopu.applications import service
from xiaopu.applications.schemas import ApplicationCreate, ApplicationDisable, ApplicationOut
from xiaopu.auth.auth import CurrentOperator
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import OptionalIdempotency
from xiaopu.kit.pagination import Page, Pagination
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

operator_router = APIRouter(prefix="/v1/operator/applications", tags=["operator"])

ENDPOINT = "/{application_id}/webhook-endpoints/{endpoint_id}"


@operator_router.post(
    "", status_code=status.HTTP_201_CREATED, operation_id="operator-create_application"
)
async def create_application(
    body: ApplicationCreate,
    operator: CurrentOperator,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> ApplicationOut:
    """Create a platform application (the mobile app's backend, say): its webhook endpoints
    receive the events of every shop and buyer. Send an Idempotency-Key to make retries safe."""
    return await idempotency.once(lambda: service.create(session, operator.account_id, body))


@operator_router.get("", operation_id="operator-list_applications")
async def list_applications(
    operator: CurrentOperator, session: DbSession, page: Pagination
) -> Page[ApplicationOut]:
    return await service.list_all(session, page)


@operator_router.get("/{application_id}", operation_id="operator-get_application")
async def get_application(
    application_id: uuid.UUID, operator: CurrentOperator, session: DbSession
) -> ApplicationOut:
    return await service.get(session, application_id)


@operator_router.post("/{application_id}/disable", operation_id="operator-disable_application")
async def disable_application(
    application_id: uuid.UUID,
    body: ApplicationDisable,
    operator: CurrentOperator,
    session: DbSession,
) -> ApplicationOut:
    """Stop delivering to the application: its pending deliveries are cancelled and new
    events are not delivered to it; its endpoints keep their settings."""
    return await service.disable(session, operator.account_id, application_id, body)


@operator_router.post("/{application_id}/enable", operation_id="operator-enable_application")
async def enable_application(
    application_id: uuid.UUID, operator: CurrentOperator, session: DbSession
) -> ApplicationOut:
    """Deliver to the application again, from the next event on (replay what it missed)."""
    return await service.enable(session, operator.account_id, application_id)


@operator_router.post(
    "/{application_id}/webhook-endpoints",
    status_code=status.HTTP_201_CREATED,
    operation_id="operator-create_application_webhook_endpoint",
)
async def create_application_webhook_endpoint(
    application_id: uuid.UUID,
    body: EndpointCreate,
    operator: CurrentOperator,
    session: DbSession,
    settings: AppSettings,
) -> EndpointWithSecret:
    """Add an endpoint for the event types named, among those applications receive (422
    `event_type_not_available` otherwise); at most 16 an application (409
    `too_many_webhook_endpoints` beyond). Its signing secret is shown in this answer only, so
    no Idempotency-Key: a stored answer would keep the secret."""
    return await service.create_endpoint(
        session,
        operator.account_id,
        application_id,
        body,
        allow_http=settings.webhook_allow_loopback,
    )


@operator_router.get(
    "/{application_id}/webhook-endpoints",
    operation_id="operator-list_application_webhook_endpoints",
)
async def list_application_webhook_endpoints(
    application_id: uuid.UUID, operator: CurrentOperator, session: DbSession, page: Pagination
) -> Page[EndpointOut]:
    return await service.list_endpoints(session, application_id, page)


@operator_router.get(ENDPOINT, operation_id="operator-get_application_webhook_endpoint")
async def get_application_webhook_endpoint(
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    operator: CurrentOperator,
    session: DbSession,
) -> EndpointOut:
    return await service.get_endpoint(session, application_id, endpoint_id)


@operator_router.patch(ENDPOINT, operation_id="operator-update_application_webhook_endpoint")
async def update_application_webhook_endpoint(
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    operator: CurrentOperator,
    session: DbSession,
    settings: AppSettings,
) -> EndpointOut:
    return await service.update_endpoint(
        session,
        operator.account_id,
        application_id,
        endpoint_id,
        body,
        allow_http=settings.webhook_allow_loopback,
    )


@operator_router.delete(
    ENDPOINT,
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="operator-delete_application_webhook_endpoint",
)
async def delete_application_webhook_endpoint(
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    operator: CurrentOperator,
    session: DbSession,
) -> Response:
    await service.delete_endpoint(session, operator.account_id, application_id, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@operator_router.post(
    f"{ENDPOINT}/rotate-secret", operation_id="operator-rotate_application_webhook_secret"
)
async def rotate_application_webhook_secret(
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: SecretRotation,
    operator: CurrentOperator,
    session: DbSession,
) -> EndpointWithSecret:
    """A new signing secret, shown in this answer only; the old one keeps signing beside it
    for `overlap_seconds`."""
    return await service.rotate_secret(
        session, operator.account_id, application_id, endpoint_id, body
    )


@operator_router.get(
    f"{ENDPOINT}/deliveries", operation_id="operator-list_application_webhook_deliveries"
)
async def list_application_webhook_deliveries(
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    operator: CurrentOperator,
    session: DbSession,
    page: Pagination,
) -> Page[DeliveryOut]:
    return await service.list_deliveries(session, application_id, endpoint_id, page)


@operator_router.get(
    f"{ENDPOINT}/attempts", operation_id="operator-list_application_webhook_attempts"
)
async def list_application_webhook_attempts(
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    operator: CurrentOperator,
    session: DbSession,
    page: Pagination,
) -> Page[AttemptOut]:
    return await service.list_attempts(session, application_id, endpoint_id, page)


@operator_router.get("/{application_id}/events", operation_id="operator-list_application_events")
async def list_application_events(
    application_id: uuid.UUID, operator: CurrentOperator, session: DbSession, page: Pagination
) -> Page[EventOut]:
    """The events applications receive (every shop's and buyer's), newest first."""
    return await service.list_events(session, application_id, page)


@operator_router.post(
    "/{application_id}/events/{event_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="operator-replay_application_event",
)
async def replay_application_event(
    application_id: uuid.UUID,
    event_id: uuid.UUID,
    body: ReplayRequest,
    operator: CurrentOperator,
    session: DbSession,
) -> list[DeliveryOut]:
    """Deliver the event again (the same `webhook-id`) to one of the application's endpoints,
    or to each of them subscribed to its type; 409 `application_disabled` while disabled."""
    return await service.replay(
        session, operator.account_id, application_id, event_id, body.endpoint_id
    )
