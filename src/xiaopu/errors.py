"""The AppError tree and its rendering as application/problem+json (RFC 9457)."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

log = structlog.get_logger(__name__)


class ProblemIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """application/problem+json, as every error is answered."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code.")
    errors: list[ProblemIssue] | None = Field(
        default=None, description="Per-field issues of a request that failed validation."
    )
    retry_after: int | None = Field(default=None, description="Seconds to wait (429 only).")


# Documented on every operation; the app moves them to the application/problem+json media type.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": Problem, "description": "Client error (problem+json)."},
    "5XX": {"model": Problem, "description": "Server error (problem+json)."},
}


class AppError(Exception):
    """An error a client can act on: an HTTP status, a stable code and a human detail."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    # Errors that record something the caller must not be able to undo by failing (a revoked
    # token family, say) keep the request's writes instead of rolling them back.
    keeps_changes: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        super().__init__(self.detail)


# 400
class InvalidJson(AppError):
    code = "invalid_json"
    title = "The request body is not valid JSON"


class InvalidCursor(AppError):
    code = "invalid_cursor"
    title = "The pagination cursor is not valid"


class IdempotencyKeyMissing(AppError):
    code = "idempotency_key_missing"
    title = "This request requires an Idempotency-Key header"


# 401
class Unauthenticated(AppError):
    status = 401
    code = "unauthenticated"
    title = "Authentication is required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    title = "The access token is invalid"


class TokenExpired(Unauthenticated):
    code = "token_expired"
    title = "The access token has expired"


class SessionRevoked(Unauthenticated):
    code = "session_revoked"
    title = "The session of this access token has ended (logged out or revoked)"


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    title = "The login or password is wrong"


class InvalidRefreshToken(Unauthenticated):
    code = "invalid_refresh_token"
    title = "The refresh token is invalid, expired or revoked"


class InvalidMetricsToken(Unauthenticated):
    code = "invalid_metrics_token"
    title = "GET /metrics needs the metrics bearer token"


class RefreshTokenReused(Unauthenticated):
    code = "refresh_token_reused"
    title = "The refresh token was already used; its whole session has been revoked"
    keeps_changes = True


class InvalidApiKey(Unauthenticated):
    code = "invalid_api_key"
    title = "The API key is invalid or revoked"


# 403
class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "You may not do this"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    title = "The API key lacks the scope this action needs"


# 404
class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class SupplierNotFound(NotFound):
    code = "supplier_not_found"
    title = "Supplier not found"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "API key not found"


# 409
class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "The request conflicts with the current state"


class ConcurrentChange(Conflict):
    """A write found the database changed since the request read it (another request took the
    stock, or stored the same Idempotency-Key): nothing was kept, and the request may be run
    again as it is."""

    code = "concurrent_change"
    title = "The request met a concurrent change; retry it"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class AccountExists(Conflict):
    code = "account_exists"
    title = "An account with this email or phone number already exists"


# 413, 422, 429
class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    title = "The request body is too large"


class ValidationFailed(AppError):
    status = 422
    code = "validation_error"
    title = "The request is not valid"


class ResponseTooLarge(AppError):
    status = 500
    code = "response_too_large"
    title = "The answer exceeded the service's size limit; ask for a smaller page or a download"


class DatabaseBusy(AppError):
    status = 503
    code = "service_busy"
    title = "The service is overloaded or its database is unreachable; retry shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class TooManyRequests(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many attempts; try again later"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        retry_after = max(1, retry_after)
        super().__init__(
            detail, extra={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)}
        )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:xiaopu:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def render(exc: AppError) -> JSONResponse:
    return problem(
        exc.status, exc.code, exc.title, exc.detail, extra=exc.extra, headers=exc.headers
    )


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, AppError):
        raise exc  # registered for AppError: Starlette hands it nothing else
    return render(exc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc  # registered for RequestValidationError alone
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return render(InvalidJson("The request body could not be parsed as JSON."))
    details = [
        {
            "loc": _jsonable(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
    summary = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:5])
    return render(ValidationFailed(summary or None, extra={"errors": details}))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc  # registered for HTTPException alone
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error")
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(status, code, title, detail, headers=exc.headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A backstop for input the schemas let through but PostgreSQL refuses.

    Data exceptions (class 22: a NUL character, a number out of range, a value too long) are the
    client's doing, so they are answered 422; a unique or foreign-key violation that a race let
    past the service's own checks is a 409. Anything else is a genuine 500.
    """
    # Through SQLAlchemy, or straight from asyncpg on the hot paths that use the raw connection.
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = str(getattr(orig, "sqlstate", None) or "")
    if state.startswith("22"):
        log.info("database_refused_input", sqlstate=state)
        return render(
            ValidationFailed(
                "A value was not acceptable to store (bad characters, out of range or too long)."
            )
        )
    lost = (
        (isinstance(exc, DBAPIError) and exc.connection_invalidated)
        or isinstance(orig, ConnectionError)
        # asyncpg's misuse errors share this class; only a closed connection is the server's.
        or (isinstance(orig, asyncpg.InterfaceError) and "closed" in str(orig))
    )
    if lost or state.startswith(("08", "40", "53", "57")):
        # The connection lost, out of connections or resources, a deadlock or serialization
        # loser, a statement timeout, or the server going away: nothing was changed (a commit
        # that went through unanswered is what the Idempotency-Key is for), and a retry will do.
        log.warning("database_unavailable", sqlstate=state)
        return render(DatabaseBusy())
    if state.startswith("23"):
        log.warning(
            "database_conflict",
            sqlstate=state,
            constraint=getattr(orig, "constraint_name", None),
            message=str(orig).splitlines()[0] if orig else None,
        )
        return render(Conflict("The request conflicts with a concurrent change; retry it."))
    return await _unhandled(request, exc)


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", exc_type=type(exc).__name__)
    return problem(
        500, "internal_error", "Internal server error", "Something went wrong on our side."
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(asyncpg.PostgresError, _database_error)
    # A connection lost under a raw asyncpg statement: no sqlstate, but the same 503.
    app.add_exception_handler(asyncpg.InterfaceError, _database_error)
    app.add_exception_handler(Exception, _unhandled)
