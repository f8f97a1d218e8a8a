"""Sign-up, login with throttling, refresh-token rotation with reuse detection, API keys."""

from __future__ import annotations

import uuid
from datetime import timedelta

import anyio
from anyio import to_thread
from limits import RateLimitItem
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.auth import repository
from xiaopu.auth.passwords import hash_password, needs_rehash, verify_password
from xiaopu.auth.revocations import SessionRevocations
from xiaopu.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    SignupRequest,
    TokenPair,
)
from xiaopu.auth.scopes import Scope
from xiaopu.auth.tokens import (
    API_KEY_DISPLAY_LENGTH,
    issue_access_token,
    new_api_key,
    new_refresh_token,
    secret_hash,
)
from xiaopu.config import Settings
from xiaopu.errors import (
    AccountExists,
    ApiKeyNotFound,
    Forbidden,
    InvalidApiKey,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidToken,
    RefreshTokenReused,
)
from xiaopu.kit.clock import utcnow
from xiaopu.kit.contact import normalize_email, normalize_phone
from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.kit.ratelimit import Limiter
from xiaopu.models import Account, AccountStatus, ApiKey, MemberRole, RefreshToken
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

# Refreshing the last-used time on every call would write on every request of a busy key.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


class AccountDisabled(Forbidden):
    code = "account_disabled"
    title = "This account is disabled"


async def _issue_tokens(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, family_id: uuid.UUID
) -> TokenPair:
    refresh = new_refresh_token()
    refresh_expires_at = utcnow() + timedelta(days=settings.refresh_token_ttl_days)
    session.add(
        RefreshToken(
            account_id=account_id,
            family_id=family_id,
            token_hash=secret_hash(refresh),
            expires_at=refresh_expires_at,
        )
    )
    access, _ = issue_access_token(settings, account_id, family_id)
    await session.flush()
    return TokenPair(
        access_token=access,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh,
        refresh_expires_at=refresh_expires_at,
    )


async def signup(
    session: AsyncSession, settings: Settings, data: SignupRequest
) -> tuple[Account, TokenPair]:
    if await repository.login_taken(session, email=data.email, phone=data.phone):
        raise AccountExists()
    password_hash = await to_thread.run_sync(hash_password, data.password)
    account = Account(
        email=data.email,
        phone=data.phone,
        password_hash=password_hash,
        display_name=data.display_name,
    )
    session.add(account)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent sign-up took the login first
        raise AccountExists() from exc
    tokens = await _issue_tokens(session, settings, account.id, new_id())
    return account, tokens


def _parse_login(login: str) -> tuple[str | None, str | None]:
    """(email, phone) of a login string; (None, None) when it is neither."""
    try:
        if "@" in login:
            return normalize_email(login), None
        return None, normalize_phone(login)
    except ValueError:
        return None, None


async def login(
    session: AsyncSession,
    settings: Settings,
    limiter: Limiter,
    data: LoginRequest,
    client_ip: str,
) -> TokenPair:
    """Check a password, counting failures only (OWASP's Authentication Cheat Sheet).

    A client address that keeps failing is refused (429), on one account or over all of them;
    an account that keeps failing, from wherever, is slowed down and never locked, so a correct
    password from a client without failures always gets in.
    """
    ip_rule = limiter.rule(settings.login_limit_per_ip)
    await limiter.check(ip_rule, "login-ip", client_ip)
    email, phone = _parse_login(data.login)
    name = email or phone or data.login.strip().lower()
    # Before the database is touched: a slowed attempt holds no pooled connection.
    delay = await login_delay(settings, limiter, name)
    if delay:
        await anyio.sleep(delay)
    account = None
    if email or phone:
        account = await repository.account_by_login(session, email=email, phone=phone)
    # One budget per account and client, whichever of its logins (email or phone) is tried. It
    # is taken before the password is checked, so parallel guesses cannot all slip through, and
    # given back in full by a success, so only failures stay counted.
    pair_rule = limiter.rule(settings.login_limit_per_account_ip)
    pair = ("login-account-ip", str(account.id) if account else name, client_ip)
    await limiter.consume(pair_rule, *pair)
    password_hash = account.password_hash if account else None
    ok = await to_thread.run_sync(verify_password, password_hash, data.password)
    if account is None or not ok:
        await limiter.count(ip_rule, "login-ip", client_ip)
        for failed in {name, account.email, account.phone} if account else {name}:
            if failed:
                await limiter.count(_slowdown_rule(settings), "login-name", failed)
        raise InvalidCredentials()
    await limiter.clear(pair_rule, *pair)
    if account.status is not AccountStatus.active:
        raise AccountDisabled()
    if needs_rehash(account.password_hash):
        account.password_hash = await to_thread.run_sync(hash_password, data.password)
    return await _issue_tokens(session, settings, account.id, new_id())


# Failures counted past the slow-down threshold; beyond them the delay is at its cap anyway.
_SLOWDOWN_STEPS = 16


def _slowdown_rule(settings: Settings) -> RateLimitItem:
    threshold = Limiter.rule(settings.login_slowdown_after)
    return type(threshold)(threshold.amount + _SLOWDOWN_STEPS, threshold.multiples)


async def login_delay(settings: Settings, limiter: Limiter, name: str) -> float:
    """Seconds every login attempt on `name` waits: none below the threshold of failures, then
    the base delay doubling with each further failure, up to the cap."""
    threshold = Limiter.rule(settings.login_slowdown_after).amount
    failures = await limiter.used(_slowdown_rule(settings), "login-name", name)
    if failures < threshold:
        return 0.0
    step = min(failures - threshold, _SLOWDOWN_STEPS)
    delay_ms: int = min(settings.login_slowdown_base_ms << step, settings.login_slowdown_max_ms)
    return delay_ms / 1000


async def _revoke(
    session: AsyncSession, revocations: SessionRevocations, family_id: uuid.UUID
) -> None:
    """End a session: its refresh tokens now, its access tokens here at once and in other
    processes at their next read. Marked here before the commit: should the commit fail, this
    process refuses a session its client meant to end anyway."""
    now = utcnow()
    await repository.revoke_family(session, family_id, now)
    revocations.add(family_id, now)


async def refresh(
    session: AsyncSession, settings: Settings, revocations: SessionRevocations, refresh_token: str
) -> TokenPair:
    """Rotate: the presented token is spent and a new one of the same family is issued."""
    now = utcnow()
    row = await repository.refresh_token_for_update(session, secret_hash(refresh_token))
    if row is None or row.revoked_at is not None:
        raise InvalidRefreshToken()
    if row.used_at is not None:
        # A spent token came back: either it was stolen or the client is replaying. Either way
        # the whole family (this login's chain) dies, and the revocation is kept.
        await _revoke(session, revocations, row.family_id)
        raise RefreshTokenReused()
    if row.expires_at <= now:
        raise InvalidRefreshToken()
    account = await session.get(Account, row.account_id)
    if account is None or account.status is not AccountStatus.active:
        raise InvalidRefreshToken()
    row.used_at = now
    return await _issue_tokens(session, settings, row.account_id, row.family_id)


async def logout(
    session: AsyncSession, revocations: SessionRevocations, refresh_token: str
) -> None:
    row = await repository.refresh_token_for_update(session, secret_hash(refresh_token))
    if row is not None:
        await _revoke(session, revocations, row.family_id)


async def account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    found = await session.get(Account, account_id)
    if found is None:
        raise InvalidToken("The account no longer exists.")
    return found


async def account_by_login(session: AsyncSession, login: str) -> Account | None:
    email, phone = _parse_login(login)
    if email is None and phone is None:
        return None
    return await repository.account_by_login(session, email=email, phone=phone)


async def is_operator(session: AsyncSession, account_id: uuid.UUID) -> bool:
    return await repository.is_operator(session, account_id)


async def member_role(
    session: AsyncSession, supplier_id: uuid.UUID, account_id: uuid.UUID
) -> MemberRole | None:
    member = await repository.membership(session, supplier_id, account_id)
    return member.role if member else None


async def authenticate_api_key(session: AsyncSession, secret: str) -> ApiKey:
    key = await repository.api_key_by_hash(session, secret_hash(secret))
    if key is None or key.revoked_at is not None:
        raise InvalidApiKey()
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= API_KEY_TOUCH_INTERVAL:
        await repository.touch_api_key(session, key.id, now)
        key.last_used_at = now
    return key


async def create_api_key(
    session: AsyncSession, supplier_id: uuid.UUID, created_by: uuid.UUID, data: ApiKeyCreate
) -> ApiKeyCreated:
    secret = new_api_key()
    key = ApiKey(
        supplier_id=supplier_id,
        name=data.name,
        prefix=secret[:API_KEY_DISPLAY_LENGTH],
        key_hash=secret_hash(secret),
        scopes=sorted({str(s) for s in data.scopes}),
        created_by_account_id=created_by,
    )
    session.add(key)
    await session.flush()
    out = ApiKeyOut.model_validate(key)
    await webhooks.emit(
        session, EventType.api_key_created, supplier_id, out.model_dump(mode="json")
    )
    return ApiKeyCreated(**out.model_dump(), key=secret)


async def list_api_keys(
    session: AsyncSession, supplier_id: uuid.UUID, page: PageParams
) -> Page[ApiKeyOut]:
    rows = await repository.supplier_api_keys(session, supplier_id, page)
    items, cursor = id_page(rows, page, lambda k: k.id)
    return Page[ApiKeyOut](items=[ApiKeyOut.model_validate(k) for k in items], next_cursor=cursor)


async def revoke_api_key(
    session: AsyncSession, supplier_id: uuid.UUID, key_id: uuid.UUID
) -> ApiKeyOut:
    key = await repository.supplier_api_key(session, supplier_id, key_id)
    if key is None:
        raise ApiKeyNotFound()
    out = ApiKeyOut.model_validate(key)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
        out = ApiKeyOut.model_validate(key)
        await webhooks.emit(
            session, EventType.api_key_revoked, supplier_id, out.model_dump(mode="json")
        )
    return out


def has_scope(key: ApiKey, scope: Scope) -> bool:
    return str(scope) in key.scopes
