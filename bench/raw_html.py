"""The baseline for page benchmarks: a raw ASGI app answering every request with the same HTML
page (read once from XIAOPU_BENCH_PAGE), and nothing else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_BODY = Path(os.environ["XIAOPU_BENCH_PAGE"]).read_bytes()
_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", str(len(_BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
