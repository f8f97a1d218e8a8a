"""Sends one signed delivery attempt (Standard Webhooks) pinned to a vetted address."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

from xiaopu.webhooks.ssrf import BlockedDestination, resolve_allowed

TIMEOUT_SECONDS = 15.0
SNIPPET_CHARS = 1000
USER_AGENT = "Xiaopu-Webhooks/1"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error: str | None
    response_snippet: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def payload(event_type: str, created_at: datetime, data: dict[str, Any]) -> str:
    body = {"type": event_type, "timestamp": created_at.isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def sign(secrets: list[str], message_id: str, at: datetime, body: str) -> str:
    """Space-separated signatures, one per active secret (two while a rotation overlaps)."""
    return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)


def _pinned(url: str, address: str) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


async def send(
    client: httpx.AsyncClient,
    *,
    url: str,
    message_id: str,
    body: str,
    secrets: list[str],
    at: datetime,
    allow_loopback: bool,
) -> AttemptResult:
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        addresses = await resolve_allowed(url, allow_loopback=allow_loopback)
    except BlockedDestination as exc:
        return AttemptResult(None, elapsed(), f"blocked: {exc}", None)
    parts = urlsplit(url)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": parts.netloc.rsplit("@", 1)[-1],
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": sign(secrets, message_id, at, body),
    }
    # Connect to the address we vetted, not to whatever a second DNS lookup returns.
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    request = client.build_request(
        "POST",
        _pinned(url, addresses[0]),
        content=body.encode(),
        headers=headers,
        extensions=extensions,
        timeout=TIMEOUT_SECONDS,
    )
    try:
        # The whole exchange, not each phase, must finish within the limit.
        async with asyncio.timeout(TIMEOUT_SECONDS):
            response = await client.send(request, follow_redirects=False, stream=True)
            try:
                head = await _read_head(response)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return AttemptResult(None, elapsed(), "timed out", None)
    except httpx.HTTPError as exc:
        return AttemptResult(None, elapsed(), f"connection failed: {type(exc).__name__}", None)
    # PostgreSQL text cannot hold NUL, which binary answers contain.
    snippet = (
        head.decode("utf-8", errors="replace")[:SNIPPET_CHARS].replace("\x00", "\ufffd")
        if head
        else None
    )
    return AttemptResult(response.status_code, elapsed(), None, snippet)


async def _read_head(response: httpx.Response) -> bytes:
    """The first few kilobytes of the answer: enough for the log, never a whole large body."""
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= SNIPPET_CHARS * 4:
            break
    return head
