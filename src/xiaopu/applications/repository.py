"""Queries for platform applications."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import Application


async def get(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> Application | None:
    return await session.get(Application, application_id, with_for_update=for_update)


async def page(session: AsyncSession, params: PageParams) -> Sequence[Application]:
    stmt = newest_first(select(Application), Application.id, params)
    return (await session.scalars(stmt)).all()
