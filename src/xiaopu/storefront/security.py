"""The storefront's protections: CSRF tokens (a signed double-submit cookie), the strict
Content-Security-Policy and the other headers every page carries, and its cookies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from xiaopu.config import Settings
from xiaopu.errors import AppError

CSRF_COOKIE = "xp_csrf"
CSRF_FIELD = "csrf"
ATTRIBUTION_COOKIE = "xp_at"
ORDER_COOKIE = "xp_ot"
ORDER_COOKIE_DAYS = 180

# No inline script or style anywhere: scripts and styles come from our own files. Product
# images are the suppliers' https URLs (or ours).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class CsrfRefused(AppError):
    status = 403
    code = "csrf_refused"
    title = "The form's CSRF token is missing or does not match"


def _key(settings: Settings) -> bytes:
    # A key of its own, derived from the server's signing secret, so a CSRF token says nothing
    # about any other signature.
    return hmac.digest(settings.jwt_key.encode(), b"xiaopu storefront csrf v1", "sha256")


def secure(settings: Settings) -> bool:
    return settings.public_base_url.startswith("https://")


def csrf_seed(request: Request) -> tuple[str, bool]:
    """The browser's CSRF cookie value, and whether it is new (to be set on the response)."""
    seed = request.cookies.get(CSRF_COOKIE, "")
    if 32 <= len(seed) <= 64 and seed.isascii():
        return seed, False
    return secrets.token_urlsafe(32), True


def csrf_token(settings: Settings, seed: str) -> str:
    mac = hmac.digest(_key(settings), seed.encode(), "sha256")
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def check_csrf(settings: Settings, request: Request, submitted: str | None) -> None:
    """The form's token must be the signature of the browser's own cookie: a page on another
    site can make the browser send the cookie, but cannot read it to sign a token for it."""
    seed = request.cookies.get(CSRF_COOKIE)
    if not seed or not submitted:
        raise CsrfRefused()
    if not hmac.compare_digest(csrf_token(settings, seed), submitted):
        raise CsrfRefused()


def set_csrf_cookie(response: Response, settings: Settings, seed: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, seed, path="/m/", httponly=True, samesite="lax", secure=secure(settings)
    )


def token_fingerprint(token: str) -> str:
    """A short, one-way name for a token, for logs that must not carry the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]
