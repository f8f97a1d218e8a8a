"""Request and response bodies for share links, share kits and link stats."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field

from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.kit.text import DisplayName


class LinkCreate(RequestModel):
    product_id: uuid.UUID | None = Field(
        default=None, description="A product in your shop; omit for a link to the whole shop."
    )
    label: DisplayName | None = Field(
        default=None, max_length=80, description="Where you post it, e.g. a chat group's name."
    )


class LinkOut(ResponseModel):
    id: uuid.UUID
    code: str
    url: str
    product_id: uuid.UUID | None
    label: str | None
    disabled: bool
    clicks: int = Field(description="Clicks counted so far (repeats within the hour excluded).")
    unique_visitors: int
    created_at: datetime


class ShareKit(ResponseModel):
    url: str
    qr_svg_url: str
    qr_png_url: str
    message: str = Field(description="A ready-to-send message for the chat.")


class DailyStat(ResponseModel):
    day: date
    clicks: int
    unique_visitors: int


class LinkStats(ResponseModel):
    link_id: uuid.UUID
    days: list[DailyStat]
