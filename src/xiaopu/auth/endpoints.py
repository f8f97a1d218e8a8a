"""Routes for sign-up, login, token refresh, the caller's account and supplier API keys."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from xiaopu.auth import service
from xiaopu.auth.auth import CurrentPerson, SupplierOwner
from xiaopu.auth.schemas import (
    AccountOut,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    RefreshRequest,
    SignupRequest,
    SignupResponse,
    TokenPair,
)
from xiaopu.db import DbSession
from xiaopu.deps import AppLimiter, AppRevocations, AppSettings, ClientIp
from xiaopu.kit.pagination import Page, Pagination

router = APIRouter(prefix="/v1", tags=["auth"])
api_keys_router = APIRouter(prefix="/v1/suppliers/{supplier_id}/api-keys", tags=["api-keys"])


@router.post("/auth/signup", status_code=status.HTTP_201_CREATED, operation_id="auth-signup")
async def signup(body: SignupRequest, session: DbSession, settings: AppSettings) -> SignupResponse:
    account, tokens = await service.signup(session, settings, body)
    return SignupResponse(account=AccountOut.model_validate(account), tokens=tokens)


@router.post("/auth/login", operation_id="auth-login")
async def login(
    body: LoginRequest,
    session: DbSession,
    settings: AppSettings,
    limiter: AppLimiter,
    client_ip: ClientIp,
) -> TokenPair:
    return await service.login(session, settings, limiter, body, client_ip)


@router.post("/auth/refresh", operation_id="auth-refresh")
async def refresh(
    body: RefreshRequest, session: DbSession, settings: AppSettings, revocations: AppRevocations
) -> TokenPair:
    return await service.refresh(session, settings, revocations, body.refresh_token)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, operation_id="auth-logout")
async def logout(body: RefreshRequest, session: DbSession, revocations: AppRevocations) -> Response:
    """End the session: its refresh tokens at once, its access tokens within seconds in every
    process (401 `session_revoked`)."""
    await service.logout(session, revocations, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", operation_id="auth-me")
async def me(person: CurrentPerson, session: DbSession) -> AccountOut:
    return AccountOut.model_validate(await service.account(session, person.account_id))


@api_keys_router.post(
    "", status_code=status.HTTP_201_CREATED, operation_id="api-keys-create_api_key"
)
async def create_api_key(
    supplier_id: uuid.UUID, body: ApiKeyCreate, caller: SupplierOwner, session: DbSession
) -> ApiKeyCreated:
    if caller.account_id is None:
        # SupplierOwner admits members' logins only; an API key never gets here.
        raise RuntimeError("an owner-only route was reached without a member's login")
    return await service.create_api_key(session, caller.supplier_id, caller.account_id, body)


@api_keys_router.get("", operation_id="api-keys-list_api_keys")
async def list_api_keys(
    supplier_id: uuid.UUID, caller: SupplierOwner, session: DbSession, page: Pagination
) -> Page[ApiKeyOut]:
    return await service.list_api_keys(session, caller.supplier_id, page)


@api_keys_router.delete("/{key_id}", operation_id="api-keys-revoke_api_key")
async def revoke_api_key(
    supplier_id: uuid.UUID, key_id: uuid.UUID, caller: SupplierOwner, session: DbSession
) -> ApiKeyOut:
    return await service.revoke_api_key(session, caller.supplier_id, key_id)
