"""The Idempotency-Key dependency: one effect per key, the first response replayed to retries.

The key is scoped to the caller. A transaction-scoped advisory lock marks a request in flight, so
a concurrent retry gets 409 at once instead of waiting (checkout, which commits as one statement,
holds no lock: a twin stores the key first or is run again and replays). The response is stored
in the same transaction as the request's effects: if they roll back, so does the key, and a
retry runs anew.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import DbSession, read_ahead, send_ahead
from xiaopu.errors import AppError, Conflict, IdempotencyKeyMissing
from xiaopu.idempotency import repository
from xiaopu.kit.clock import utcnow

T = TypeVar("T")

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
ANONYMOUS = "anonymous"


class InvalidIdempotencyKey(AppError):
    code = "invalid_idempotency_key"
    title = "The Idempotency-Key must be 1 to 255 visible ASCII characters"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is still being processed"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class IdempotencyKeyReused(AppError):
    status = 422
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used for a different request"


class Replay(Exception):
    """Raised to answer with the stored first response; rendered by the app's handler."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


async def replay_stored_response(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, Replay):
        raise exc  # registered for Replay alone
    return JSONResponse(exc.body, status_code=exc.status, headers={"Idempotent-Replayed": "true"})


def _canonical(body: bytes) -> bytes:
    """The same JSON however it is spaced or ordered, so a faithful retry is recognised."""
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return body


def _path(request: Request) -> str:
    """request.url.path, as Starlette makes it, without building the whole URL."""
    return str(request.scope["path"]).replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def set_principal(request: Request, principal: str) -> None:
    """Called by the auth dependencies: idempotency keys are scoped to this principal."""
    request.state.principal = principal


class Idempotency:
    """`hold`: mark the key in flight with the advisory lock, which needs a transaction. A
    request that commits as one statement (checkout) does without: its store settles a twin
    that ran at the same time, which is run again and replays the stored response."""

    def __init__(
        self, session: AsyncSession, request: Request, key: str | None, *, hold: bool = True
    ) -> None:
        self._session = session
        self._request = request
        self.key = key
        self.hold = hold
        # The stored response's JSON, once stored: a route that renders the same body itself
        # sends this instead of serialising the result a second time.
        self.stored_json: str | None = None

    async def once(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` unless this key already has a response; then replay that instead."""
        if self.key is None:
            return await work()
        request = self._request
        principal: str = getattr(request.state, "principal", ANONYMOUS)
        fingerprint = hashlib.sha256(
            b"\n".join(
                [
                    request.method.encode(),
                    _path(request).encode(),
                    _canonical(await request.body()),
                ]
            )
        ).digest()

        def answer_stored(stored: repository.Stored | None) -> None:
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    raise IdempotencyKeyReused()
                raise Replay(stored.response_status, stored.response_body)

        if self.hold:
            locked, stored = await repository.claim(self._session, principal, self.key)
            if not locked:
                raise IdempotencyKeyInUse()
            answer_stored(stored)
            result = await work()
        else:
            # Asked with the work's first reads; a stored response stops it before it writes.
            read_ahead(self._session, repository.lookup(principal, self.key), answer_stored)
            try:
                result = await work()
            except Exception:
                await send_ahead(self._session)  # a stored response answers before a refusal
                raise
        route = request.scope.get("route")
        status = getattr(route, "status_code", None) or 200
        # As FastAPI will render it (by alias). pydantic writes a model's JSON itself, several
        # times faster than a dict dump followed by json.dumps.
        body_json = (
            result.model_dump_json(by_alias=True)
            if isinstance(result, BaseModel)
            else json.dumps(jsonable_encoder(result), separators=(",", ":"), ensure_ascii=False)
        )
        await repository.store(
            self._session,
            principal=principal,
            key=self.key,
            method=request.method,
            path=_path(request)[:2048],
            fingerprint=fingerprint,
            status=status,
            body_json=body_json,
            at=utcnow(),
        )
        self.stored_json = body_json
        return result


async def _key_header(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="A unique key per intended action (a UUID, say); retries reuse it.",
        ),
    ] = None,
) -> str | None:
    if idempotency_key is not None:
        check_key(idempotency_key)
    return idempotency_key


def check_key(key: str) -> None:
    if not _VALID_KEY.fullmatch(key):
        raise InvalidIdempotencyKey()


async def _optional(
    session: DbSession, request: Request, key: Annotated[str | None, Depends(_key_header)]
) -> Idempotency:
    return Idempotency(session, request, key)


async def _required(
    session: DbSession, request: Request, key: Annotated[str | None, Depends(_key_header)]
) -> Idempotency:
    if key is None:
        raise IdempotencyKeyMissing()
    return Idempotency(session, request, key)


async def _required_key(key: Annotated[str | None, Depends(_key_header)]) -> str:
    if key is None:
        raise IdempotencyKeyMissing()
    return key


OptionalIdempotency = Annotated[Idempotency, Depends(_optional)]
# The key alone, for a route that runs its own unit of work (checkout).
RequiredKey = Annotated[str, Depends(_required_key)]
RequiredIdempotency = Annotated[Idempotency, Depends(_required)]

# The dependencies that refuse a request without the key: a route that depends on one of them
# is the marker by which the OpenAPI document lists the header as required.
_REQUIRING: frozenset[Callable[..., Any]] = frozenset({_required, _required_key})


def requires_key(route: APIRoute) -> bool:
    """Whether the route answers 400 `idempotency_key_missing` to a request without the key.

    The header itself is declared optional (FastAPI would answer its absence with a 422, and
    the error must be the documented 400), so the document is corrected from this."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call in _REQUIRING:
            return True
        pending.extend(dependency.dependencies)
    return False


def document_required_keys(schema: dict[str, Any], routes: Iterable[APIRoute]) -> None:
    """Mark the Idempotency-Key header required on every operation that requires it."""
    for route in routes:
        if not route.include_in_schema or not requires_key(route):
            continue
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            (parameter,) = (
                p
                for p in operation.get("parameters", [])
                if p["in"] == "header" and p["name"] == HEADER
            )
            parameter["required"] = True
            # The declared type admits its absence (None); a required key is a string. A new
            # dict: FastAPI may share one parameter's schema between operations.
            declared = parameter["schema"]
            present = [o for o in declared.get("anyOf", ()) if o != {"type": "null"}]
            if len(present) == 1:
                rest = {k: v for k, v in declared.items() if k != "anyOf"}
                parameter["schema"] = {**rest, **present[0]}


async def purge_expired(session: AsyncSession) -> int:
    return await repository.purge_before(session, utcnow() - RETENTION)
