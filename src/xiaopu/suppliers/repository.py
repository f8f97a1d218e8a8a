"""Queries for suppliers."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.models import Supplier


async def get(session: AsyncSession, supplier_id: uuid.UUID) -> Supplier | None:
    return await session.get(Supplier, supplier_id)
