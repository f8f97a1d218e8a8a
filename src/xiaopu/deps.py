"""Typed dependencies for app-wide objects: settings, the rate limiter, revoked sessions.

Dependencies here and elsewhere are `async def` even when they never await: FastAPI runs a plain
`def` dependency in a worker thread, a thread hand-off per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from xiaopu.auth.revocations import SessionRevocations
from xiaopu.config import Settings
from xiaopu.kit.ratelimit import Limiter


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.limiter
    return limiter


async def _revocations(request: Request) -> SessionRevocations:
    revocations: SessionRevocations = request.app.state.revocations
    return revocations


async def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


AppSettings = Annotated[Settings, Depends(_settings)]
AppLimiter = Annotated[Limiter, Depends(_limiter)]
AppRevocations = Annotated[SessionRevocations, Depends(_revocations)]
ClientIp = Annotated[str, Depends(_client_ip)]
