"""POST /v1/orders answered before FastAPI's routing and dependency injection: checkout's fast path.

Checkout is the busiest write. FastAPI's per-request machinery (the middleware stack, routing,
dependency solving, body and response validation) cost about a quarter of its CPU, so the app
hands this one route to `CheckoutRoute`, which does the same work as the declared endpoint in
`endpoints.py` (that one still documents the route in OpenAPI): the same authentication,
Idempotency-Key rules, body model, service call, unit of work and error handlers, in the order
FastAPI applies them. It follows only what the app declares in create_app(): middleware added to
the app later, or dependency_overrides, do not reach it (set XIAOPU_CHECKOUT_FAST_PATH=false).
"""

from __future__ import annotations

import email.message
import functools
import json
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from xiaopu.auth.auth import optional_person
from xiaopu.config import Settings
from xiaopu.errors import IdempotencyKeyMissing
from xiaopu.idempotency.service import check_key, set_principal
from xiaopu.orders.placing import place
from xiaopu.orders.schemas import CheckoutIn

PATH = "/v1/orders"
UNPARSABLE = "There was an error parsing the body"  # FastAPI's words
_BODY = TypeAdapter(CheckoutIn)


def handles(scope: Scope) -> bool:
    return bool(scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH)


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    """As FastAPI decides whether to parse a body as JSON (strictly: a body without a content
    type is not JSON). Clients send a handful of spellings, each parsed once."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    main, sub = message.get_content_maintype(), message.get_content_subtype()
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _body_errors(error: ValidationError) -> RequestValidationError:
    """pydantic's errors located under "body", as FastAPI reports them."""
    return RequestValidationError(
        [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
    )


def parse_body(body: bytes, content_type: str | None) -> CheckoutIn:
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if _is_json(content_type):
        try:
            return CheckoutIn.model_validate_json(body)
        except ValidationError:
            pass
        # Refusals are rare: the body is parsed and validated again as FastAPI does it (json,
        # then pydantic's python mode), so that they read exactly the same.
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError as error:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error"}]
            ) from None
        except Exception:  # not UTF-8, or nested too deep
            raise HTTPException(400, UNPARSABLE) from None
    else:
        parsed = body  # refused, as FastAPI refuses a body it does not parse as JSON
    try:
        return _BODY.validate_python(parsed, from_attributes=True)
    except ValidationError as error:
        raise _body_errors(error) from None


class CheckoutRoute:
    """The ASGI app for POST /v1/orders (wrapped in the request-context middleware)."""

    def __init__(self, app: FastAPI, route: APIRoute) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # As the router would: names the route for metrics and gives the idempotency record
        # the route's status code.
        scope["route"] = self.route
        scope.setdefault("app", self.app)
        request = Request(scope, receive)
        try:
            response = await self._checkout(request)
        except Exception as exc:
            handler, unexpected = self._handler(exc)
            await (await handler(request, exc))(scope, receive, send)
            if unexpected:
                raise  # as Starlette's error middleware does, for the server to log it too
            return
        await response(scope, receive, send)

    async def _checkout(self, request: Request) -> Response:
        settings: Settings = self.app.state.settings
        # FastAPI reads and parses the body before it solves dependencies, and reports the
        # body's validation errors after them: a malformed body is refused first, an invalid
        # one only once the caller and the key pass.
        invalid = None
        try:
            body = parse_body(await _body(request), request.headers.get("content-type"))
        except RequestValidationError as error:
            if any(e.get("type") == "json_invalid" for e in error.errors()):
                raise
            invalid = error
        person = optional_person(request, settings)
        key = request.headers.get("idempotency-key")
        if key is None:
            raise IdempotencyKeyMissing()
        check_key(key)
        if invalid is not None:
            raise invalid
        if person is None:
            # Guests' keys are scoped to their phone, so one guest's key never replays another's.
            set_principal(request, f"guest:{body.address.phone}")
        account_id = person.account_id if person else None
        out, stored_json = await place(self.app, settings, request, key, account_id, body)
        return Response(
            stored_json or out.model_dump_json(by_alias=True),
            status_code=self.route.status_code or 201,
            media_type="application/json",
        )

    def _handler(self, exc: Exception) -> tuple[Any, bool]:
        """The app's own handler for this error, found as Starlette finds it, and whether the
        error was unexpected (only the catch-all handler takes it)."""
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers and cls is not Exception:
                return handlers[cls], False
        return handlers[Exception], True


async def _body(request: Request) -> bytes:
    try:
        return await request.body()
    except HTTPException:
        raise  # the body limit's 413
    except Exception:  # the client went away mid-body
        raise HTTPException(400, UNPARSABLE) from None
