"""/healthz (process up), /readyz (database reachable, migrations at head), /metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    operation_id="health-metrics",
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
