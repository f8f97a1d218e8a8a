"""Platform applications and their webhook endpoints, as operators manage them, audited.

An application owns webhook endpoints like a supplier does (webhooks.service does the work, with
the application as the endpoints' owner) and receives the events of every shop and buyer. Each
operator action is one audit record in the action's own transaction, written last (the audit
chain's lock is held until commit). Endpoint states in the log never carry a secret.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.applications import repository
from xiaopu.applications.schemas import ApplicationCreate, ApplicationDisable, ApplicationOut
from xiaopu.audit import service as audit
from xiaopu.errors import Conflict, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.models import Application, ApplicationStatus, AuditAction
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import Owner
from xiaopu.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventOut,
    SecretRotation,
)


class ApplicationNotFound(NotFound):
    code = "application_not_found"
    title = "Application not found"


class ApplicationAlreadyDisabled(Conflict):
    code = "application_already_disabled"
    title = "This application is already disabled"


class ApplicationAlreadyActive(Conflict):
    code = "application_already_active"
    title = "This application is already active"


class ApplicationDisabled(Conflict):
    code = "application_disabled"
    title = "This application is disabled: enable it first"


def _state(app: Application) -> dict[str, Any]:
    return {"name": app.name, "status": app.status, "disabled_reason": app.disabled_reason}


# What the log keeps of an endpoint: where it sends what, and its status. Never its secret.
_LOGGED = {"id", "url", "description", "event_types", "status", "disabled_reason"}
_LOGGED_ROTATION = _LOGGED | {"previous_secret_expires_at"}


def _endpoint_state(
    app_id: uuid.UUID, endpoint: EndpointOut, fields: set[str] = _LOGGED
) -> dict[str, Any]:
    return {"application_id": str(app_id), **endpoint.model_dump(mode="json", include=fields)}


async def _application(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> Application:
    app = await repository.get(session, application_id, for_update=for_update)
    if app is None:
        raise ApplicationNotFound()
    return app


# Applications --------------------------------------------------------------------------------


async def create(
    session: AsyncSession, operator_id: uuid.UUID, data: ApplicationCreate
) -> ApplicationOut:
    app = Application(name=data.name.strip(), status=ApplicationStatus.active)
    session.add(app)
    await session.flush()
    await audit.record(
        session,
        operator_id,
        AuditAction.application_create,
        "application",
        app.id,
        after=_state(app),
    )
    return ApplicationOut.model_validate(app)


async def list_all(session: AsyncSession, page: PageParams) -> Page[ApplicationOut]:
    rows = await repository.page(session, page)
    items, cursor = id_page(rows, page, lambda a: a.id)
    return Page[ApplicationOut](
        items=[ApplicationOut.model_validate(a) for a in items], next_cursor=cursor
    )


async def get(session: AsyncSession, application_id: uuid.UUID) -> ApplicationOut:
    return ApplicationOut.model_validate(await _application(session, application_id))


async def disable(
    session: AsyncSession,
    operator_id: uuid.UUID,
    application_id: uuid.UUID,
    data: ApplicationDisable,
) -> ApplicationOut:
    """From now on its endpoints receive nothing: no new deliveries, and those pending are
    cancelled (a delivery queued by a transaction that raced this one is cancelled when its
    attempt finds the application disabled). Its endpoints keep their own status."""
    app = await _application(session, application_id, for_update=True)
    if app.status is ApplicationStatus.disabled:
        raise ApplicationAlreadyDisabled()
    before = _state(app)
    app.status = ApplicationStatus.disabled
    app.disabled_at = utcnow()
    app.disabled_reason = data.reason
    await session.flush()
    await webhooks.cancel_pending_of_owner(session, Owner.application(app.id))
    await audit.record(
        session,
        operator_id,
        AuditAction.application_disable,
        "application",
        app.id,
        reason=data.reason,
        before=before,
        after=_state(app),
    )
    return ApplicationOut.model_validate(app)


async def enable(
    session: AsyncSession, operator_id: uuid.UUID, application_id: uuid.UUID
) -> ApplicationOut:
    """Its endpoints receive events again from now on (what happened meanwhile can be
    replayed)."""
    app = await _application(session, application_id, for_update=True)
    if app.status is ApplicationStatus.active:
        raise ApplicationAlreadyActive()
    before = _state(app)
    app.status = ApplicationStatus.active
    app.disabled_at = None
    app.disabled_reason = None
    await session.flush()
    await audit.record(
        session,
        operator_id,
        AuditAction.application_enable,
        "application",
        app.id,
        before=before,
        after=_state(app),
    )
    return ApplicationOut.model_validate(app)


# Its endpoints, events, deliveries and attempts ----------------------------------------------


async def _owner(session: AsyncSession, application_id: uuid.UUID) -> Owner:
    """The application as an endpoints' owner; 404 if there is no such application."""
    return Owner.application((await _application(session, application_id)).id)


async def create_endpoint(
    session: AsyncSession,
    operator_id: uuid.UUID,
    application_id: uuid.UUID,
    data: EndpointCreate,
    *,
    allow_http: bool,
) -> EndpointWithSecret:
    owner = await _owner(session, application_id)
    created = await webhooks.create_endpoint(session, owner, data, allow_http=allow_http)
    await audit.record(
        session,
        operator_id,
        AuditAction.webhook_endpoint_create,
        "webhook_endpoint",
        created.id,
        after=_endpoint_state(application_id, created),
    )
    return created


async def list_endpoints(
    session: AsyncSession, application_id: uuid.UUID, page: PageParams
) -> Page[EndpointOut]:
    return await webhooks.list_endpoints(session, await _owner(session, application_id), page)


async def get_endpoint(
    session: AsyncSession, application_id: uuid.UUID, endpoint_id: uuid.UUID
) -> EndpointOut:
    owner = await _owner(session, application_id)
    return await webhooks.get_endpoint(session, owner, endpoint_id)


async def update_endpoint(
    session: AsyncSession,
    operator_id: uuid.UUID,
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    data: EndpointUpdate,
    *,
    allow_http: bool,
) -> EndpointOut:
    owner = await _owner(session, application_id)
    before = await webhooks.get_endpoint(session, owner, endpoint_id, for_update=True)
    after = await webhooks.update_endpoint(session, owner, endpoint_id, data, allow_http=allow_http)
    await audit.record(
        session,
        operator_id,
        AuditAction.webhook_endpoint_update,
        "webhook_endpoint",
        endpoint_id,
        before=_endpoint_state(application_id, before),
        after=_endpoint_state(application_id, after),
    )
    return after


async def delete_endpoint(
    session: AsyncSession,
    operator_id: uuid.UUID,
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
) -> None:
    owner = await _owner(session, application_id)
    before = await webhooks.get_endpoint(session, owner, endpoint_id, for_update=True)
    await webhooks.delete_endpoint(session, owner, endpoint_id)
    await audit.record(
        session,
        operator_id,
        AuditAction.webhook_endpoint_delete,
        "webhook_endpoint",
        endpoint_id,
        before=_endpoint_state(application_id, before),
        after={"application_id": str(application_id), "deleted": True},
    )


async def rotate_secret(
    session: AsyncSession,
    operator_id: uuid.UUID,
    application_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    data: SecretRotation,
) -> EndpointWithSecret:
    owner = await _owner(session, application_id)
    before = await webhooks.get_endpoint(session, owner, endpoint_id, for_update=True)
    rotated = await webhooks.rotate_secret(session, owner, endpoint_id, data)
    await audit.record(
        session,
        operator_id,
        AuditAction.webhook_endpoint_rotate,
        "webhook_endpoint",
        endpoint_id,
        before=_endpoint_state(application_id, before, _LOGGED_ROTATION),
        after=_endpoint_state(application_id, rotated, _LOGGED_ROTATION),
    )
    return rotated


async def list_deliveries(
    session: AsyncSession, application_id: uuid.UUID, endpoint_id: uuid.UUID, page: PageParams
) -> Page[DeliveryOut]:
    owner = await _owner(session, application_id)
    return await webhooks.list_deliveries(session, owner, endpoint_id, page)


async def list_attempts(
    session: AsyncSession, application_id: uuid.UUID, endpoint_id: uuid.UUID, page: PageParams
) -> Page[AttemptOut]:
    owner = await _owner(session, application_id)
    return await webhooks.list_attempts(session, owner, endpoint_id, page)


async def list_events(
    session: AsyncSession, application_id: uuid.UUID, page: PageParams
) -> Page[EventOut]:
    return await webhooks.list_events(session, await _owner(session, application_id), page)


async def replay(
    session: AsyncSession,
    operator_id: uuid.UUID,
    application_id: uuid.UUID,
    event_id: uuid.UUID,
    endpoint_id: uuid.UUID | None,
) -> list[DeliveryOut]:
    """Deliver an event of a shop or buyer again to one of the application's endpoints, or to
    each of them subscribed to its type; refused while the application is disabled."""
    app = await _application(session, application_id)
    if app.status is not ApplicationStatus.active:
        raise ApplicationDisabled()
    made = await webhooks.replay(session, Owner.application(app.id), event_id, endpoint_id)
    await audit.record(
        session,
        operator_id,
        AuditAction.event_replay,
        "event",
        event_id,
        after={
            "application_id": str(app.id),
            "deliveries": [{"id": str(d.id), "endpoint_id": str(d.endpoint_id)} for d in made],
        },
    )
    return made
