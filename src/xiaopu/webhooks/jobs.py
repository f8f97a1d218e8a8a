"""The webhook delivery job: one attempt per job, the next one queued on failure."""

from __future__ import annotations

import json
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.queue import JobContext
from xiaopu.webhooks.service import DELIVER_JOB, attempt_delivery

__all__ = ["DELIVER_JOB", "deliver"]


async def deliver(session: AsyncSession, ctx: JobContext, payload: bytes) -> None:
    message = json.loads(payload)
    await attempt_delivery(
        session,
        ctx.http,
        uuid.UUID(message["delivery_id"]),
        int(message["attempt"]),
        allow_loopback=ctx.settings.webhook_allow_loopback,
    )
