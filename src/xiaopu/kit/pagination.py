"""Cursor pagination: opaque keyset cursors and a capped page size for every list."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from xiaopu.errors import InvalidCursor

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

T = TypeVar("T")
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def encode_cursor(values: Sequence[str | int]) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> list[str | int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(values, list) or not all(isinstance(v, str | int) for v in values):
        raise InvalidCursor()
    return values


class PageParams(BaseModel):
    limit: int
    cursor: str | None

    def after_id(self) -> uuid.UUID | None:
        """The id a newest-first list continues below (cursor of a single id)."""
        if self.cursor is None:
            return None
        values = self.decode()
        try:
            (value,) = values
            return uuid.UUID(str(value))
        except ValueError as exc:
            raise InvalidCursor() from exc

    def decode(self) -> list[str | int]:
        return [] if self.cursor is None else decode_cursor(self.cursor)


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="`next_cursor` of the previous page."),
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


Pagination = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        """`ApiKeyPage` for `Page[ApiKeyOut]`: the name OpenAPI and generated clients show."""
        (item,) = params
        name: str = getattr(item, "__name__", "Item")
        return f"{name.removesuffix('Out')}Page"


def newest_first(
    stmt: SelectT, id_column: InstrumentedAttribute[uuid.UUID], page: PageParams
) -> SelectT:
    """Keyset page over a UUIDv7 id column: newest first, one extra row to detect the end."""
    after = page.after_id()
    if after is not None:
        stmt = stmt.where(id_column < after)
    return stmt.order_by(id_column.desc()).limit(page.limit + 1)


def id_page(items: Sequence[T], page: PageParams, key: Any) -> tuple[list[T], str | None]:
    """Cut the extra row off and build the cursor from the last item's id."""
    if len(items) <= page.limit:
        return list(items), None
    kept = list(items[: page.limit])
    return kept, encode_cursor([str(key(kept[-1]))])
