"""Structured JSON logs, Prometheus metrics and the request-id/access-log middleware."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import structlog
from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xiaopu.errors import PayloadTooLarge, ResponseTooLarge, render

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

HTTP_REQUESTS = Counter(
    "xiaopu_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "xiaopu_http_request_duration_seconds",
    "Time to answer HTTP requests.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

RESPONSES_REFUSED = Counter(
    "xiaopu_http_responses_too_large_total",
    "Answers refused for exceeding XIAOPU_MAX_RESPONSE_BYTES (a defect to fix).",
    ["route"],
)

log = structlog.get_logger("xiaopu.http")


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        # Not cached, so tests can capture logs; the lookup costs well under a microsecond.
        cache_logger_on_first_use=False,
    )


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    """Gives every request an id (echoed in X-Request-ID), an access-log line and metrics.

    It also caps request bodies: a declared Content-Length above the limit is turned away before
    any work is done, and a streamed body is stopped as soon as it grows past the limit (the
    HTTPException it raises is rendered as problem+json like every other error).

    And it caps answers: every list is paged and every field bounded, so no answer should come
    near `max_response_bytes`; one that does is a defect, answered as a 500 problem
    (`response_too_large`), logged and counted, rather than sent. Streamed answers (CSV
    downloads, built a chunk at a time) are the way to send more and are not capped.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, max_response_bytes: int = 8 * 1024 * 1024
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_response_bytes = max_response_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        declared_length = 0
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared_length = int(value)
        request_id = (
            incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        )
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        most = self.max_response_bytes
        refused = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, refused
            if refused:
                return  # the oversized body's pieces: the problem was sent instead
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                length = headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > most:
                    refused = True
                    status = 500
                    RESPONSES_REFUSED.labels(_route_of(scope)).inc()
                    log.error("response_too_large", size_bytes=int(length), limit=most)
                    await render(ResponseTooLarge())(scope, receive, send_with_id_unchecked)
                    return
                status = message["status"]
                headers.append(REQUEST_ID_HEADER, request_id)
            await send(message)

        async def send_with_id_unchecked(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        limit = self.max_body_bytes
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"The limit is {limit} bytes.")
            return message

        try:
            if declared_length > limit:
                too_large = render(PayloadTooLarge(f"The limit is {limit} bytes."))
                await too_large(scope, receive, send_with_id)
            else:
                await self.app(scope, receive_within_limit, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            log.info(
                "request",
                method=method,
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
