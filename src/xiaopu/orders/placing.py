"""Placing an order under its Idempotency-Key in checkout's light unit of work: what the API's
checkout route and the storefront's checkout form both call."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from xiaopu.config import Settings
from xiaopu.db import run_unit_of_work
from xiaopu.idempotency.service import Idempotency
from xiaopu.orders import service
from xiaopu.orders.schemas import CheckoutIn, CheckoutOut


async def place(
    app: FastAPI,
    settings: Settings,
    request: Request,
    key: str,
    account_id: uuid.UUID | None,
    body: CheckoutIn,
) -> tuple[CheckoutOut, str | None]:
    """Checkout under its Idempotency-Key, in a unit of work that commits as one statement and
    is run again should that statement find the stock or the key taken meanwhile (the run again
    reads the stock as it is, or replays the twin's response); with the response's JSON as the
    idempotency record stores it."""

    async def attempt(session: AsyncSession) -> tuple[CheckoutOut, str | None]:
        idempotency = Idempotency(session, request, key, hold=False)
        out = await idempotency.once(lambda: service.checkout(session, settings, account_id, body))
        return out, idempotency.stored_json

    return await run_unit_of_work(app.state.sessionmaker, attempt)
