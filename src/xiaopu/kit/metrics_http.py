"""A small HTTP server on its own port for Prometheus scrapes (/metrics) and health (/healthz)."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

# A scraper's request line and headers fit well within this; anything slower or larger is not
# a scraper and is cut off.
_MAX_HEAD_BYTES = 8192
_READ_TIMEOUT_SECONDS = 5.0

Healthy = Callable[[], bool]


def _answer(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class MetricsServer:
    """Answers GET /metrics with the registry and GET /healthz with 200 while `healthy()` says
    so (503 otherwise), on the event loop it runs in: an answer also proves the loop is not
    stuck. One request per connection; nothing else is served."""

    def __init__(
        self, *, registry: CollectorRegistry = REGISTRY, healthy: Healthy = lambda: True
    ) -> None:
        self.registry = registry
        self.healthy = healthy
        self.port: int | None = None
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, *, tries: int = 1) -> int:
        """Listen on the first free port of `port` .. `port + tries - 1`, and return it."""
        for candidate in range(port, port + tries):
            try:
                self._server = await asyncio.start_server(
                    self._serve, host, candidate, limit=_MAX_HEAD_BYTES
                )
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or candidate == port + tries - 1:
                    raise
                continue
            self.port = self._server.sockets[0].getsockname()[1]
            return self.port
        raise RuntimeError("unreachable: the loop returns or raises")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.write(self._respond(head))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a slow, cut-short or oversized request gets no answer
        except ConnectionError:
            pass  # the scraper went away
        finally:
            writer.close()

    def _respond(self, head: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        target = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method != b"GET":
            return _answer("405 Method Not Allowed", "text/plain", b"")
        if target == b"/metrics":
            return _answer("200 OK", CONTENT_TYPE_LATEST, generate_latest(self.registry))
        if target == b"/healthz":
            if self.healthy():
                return _answer("200 OK", "application/json", b'{"status":"ok"}')
            return _answer("503 Service Unavailable", "application/json", b'{"status":"down"}')
        return _answer("404 Not Found", "text/plain", b"")
