"""Access tokens (JWT, HS256, audience pinned), opaque refresh tokens and API key secrets."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from xiaopu.config import Settings
from xiaopu.errors import InvalidToken, TokenExpired
from xiaopu.kit.clock import utcnow

ALGORITHM = "HS256"
REFRESH_TOKEN_PREFIX = "xpr_"  # noqa: S105 - a prefix, not a secret
API_KEY_PREFIX = "xpk_"
API_KEY_DISPLAY_LENGTH = 12
# Clock skew tolerated between the servers that issue and check tokens.
LEEWAY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    account_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime


def issue_access_token(
    settings: Settings, account_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[str, datetime]:
    now = utcnow()
    expires_at = now + timedelta(seconds=settings.access_token_ttl_seconds)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(account_id),
        "sid": str(session_id),
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, settings.jwt_key, algorithm=ALGORITHM), expires_at


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            # Times are checked below against the application clock, which tests can move.
            options={
                "require": ["iss", "aud", "sub", "sid", "iat", "exp"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
        account_id = uuid.UUID(str(claims["sub"]))
        session_id = uuid.UUID(str(claims["sid"]))
        issued = datetime.fromtimestamp(int(claims["iat"]), tz=utcnow().tzinfo)
        expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo)
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise InvalidToken() from exc
    now = utcnow()
    if issued > now + LEEWAY:
        raise InvalidToken("The access token was issued in the future.")
    if expires_at <= now - LEEWAY:
        raise TokenExpired()
    return AccessClaims(account_id=account_id, session_id=session_id, expires_at=expires_at)


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> bytes:
    """SHA-256 suffices: these secrets carry 256 random bits, nothing to brute-force."""
    return hashlib.sha256(secret.encode()).digest()
