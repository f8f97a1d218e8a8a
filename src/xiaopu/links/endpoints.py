"""Routes for a shop's share links, their share kits, stats and QR codes."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request, Response, status

from xiaopu.auth.auth import CurrentPerson
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.links import service
from xiaopu.links.schemas import LinkCreate, LinkOut, LinkStats, ShareKit

router = APIRouter(prefix="/v1", tags=["links"])
# The QR code's image, as bytes (a generated client reads it as a file).
_IMAGE = {"schema": {"type": "string", "format": "binary"}}
Code = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{8,16}$")]


@router.post(
    "/shops/mine/links", status_code=status.HTTP_201_CREATED, operation_id="links-create_link"
)
async def create_link(
    body: LinkCreate, person: CurrentPerson, session: DbSession, settings: AppSettings
) -> LinkOut:
    """A share link for a product in your shop, or for the whole shop."""
    return await service.create_link(session, settings, person.account_id, body)


@router.get("/shops/mine/links", operation_id="links-list_links")
async def list_links(
    person: CurrentPerson, session: DbSession, settings: AppSettings, page: Pagination
) -> Page[LinkOut]:
    return await service.list_links(session, settings, person.account_id, page)


@router.post("/shops/mine/links/{link_id}/disable", operation_id="links-disable_link")
async def disable_link(
    link_id: uuid.UUID,
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    request: Request,
    after_commit: BackgroundTasks,
) -> LinkOut:
    """Stop a link: from now on it answers a friendly 404 page."""
    link = await service.disable_link(session, settings, person.account_id, link_id)
    # Background tasks run once the response is out, so after the commit: a click arriving
    # in between cannot put the link back in the cache from the old row.
    after_commit.add_task(request.app.state.link_cache.invalidate, link.code)
    return link


@router.get("/shops/mine/links/{link_id}/kit", operation_id="links-get_share_kit")
async def get_share_kit(
    link_id: uuid.UUID, person: CurrentPerson, session: DbSession, settings: AppSettings
) -> ShareKit:
    """The URL, QR code links and a ready message to paste into a chat."""
    return await service.share_kit(session, settings, person.account_id, link_id)


@router.get("/shops/mine/links/{link_id}/stats", operation_id="links-get_link_stats")
async def get_link_stats(
    link_id: uuid.UUID,
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> LinkStats:
    """Clicks and unique visitors per local day (`XIAOPU_TIME_ZONE`), today included, from
    counters kept as clicks are written."""
    return await service.link_stats(session, person.account_id, link_id, days, settings.zone)


@router.get(
    "/links/{code}/qr.{kind}",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": _IMAGE, "image/png": _IMAGE}}},
    operation_id="links-get_qr_code",
)
async def get_qr_code(
    code: Code, kind: Literal["svg", "png"], session: DbSession, settings: AppSettings
) -> Response:
    body, media_type = await service.qr_code(session, settings, code, kind)
    return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
