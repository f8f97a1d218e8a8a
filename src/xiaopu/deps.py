"""Typed dependencies for app-wide objects: settings and the rate limiter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from xiaopu.config import Settings
from xiaopu.kit.ratelimit import Limiter


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.limiter
    return limiter


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


AppSettings = Annotated[Settings, Depends(_settings)]
AppLimiter = Annotated[Limiter, Depends(_limiter)]
ClientIp = Annotated[str, Depends(_client_ip)]
