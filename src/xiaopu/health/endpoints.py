"""/healthz (process up), /readyz (database reachable, migrations at head), /metrics."""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.config import Environment, Settings
from xiaopu.errors import InvalidMetricsToken, NotFound, Problem
from xiaopu.migrate import head_revision

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool
    migrations: Literal["at_head", "behind", "unknown"]


@router.get("/healthz", operation_id="health-healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Readiness}}, operation_id="health-readyz")
async def readyz(request: Request, response: Response) -> Readiness:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    database = False
    migrations: Literal["at_head", "behind", "unknown"] = "unknown"
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
            database = True
            current = await session.scalar(text("SELECT version_num FROM alembic_version"))
            migrations = "at_head" if current == head_revision() else "behind"
    except Exception:  # noqa: S110 - whatever fails here, the answer is "not ready"
        pass
    ready = Readiness(
        status="ok" if database and migrations == "at_head" else "unavailable",
        database=database,
        migrations=migrations,
    )
    if ready.status != "ok":
        response.status_code = 503
    return ready


def _check_metrics_access(settings: Settings, authorization: str | None) -> None:
    """/metrics needs the bearer token when one is set; without one it is open in development
    and test and off in production (scraped on XIAOPU_METRICS_PORT instead, or not at all)."""
    token = settings.metrics_token
    if token is None:
        if settings.env is Environment.production:
            raise NotFound()
        return
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        raise InvalidMetricsToken()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {"model": Problem}},
    operation_id="health-metrics",
)
async def metrics(
    request: Request,
    authorization: Annotated[
        str | None,
        Header(description="`Bearer` and XIAOPU_METRICS_TOKEN, when one is configured."),
    ] = None,
) -> Response:
    _check_metrics_access(request.app.state.settings, authorization)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
