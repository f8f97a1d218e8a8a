"""Who may call: typed dependencies for people, operators and supplier members or API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from xiaopu.auth import service
from xiaopu.auth.revocations import SessionRevocations
from xiaopu.auth.scopes import Scope
from xiaopu.auth.tokens import API_KEY_PREFIX, AccessClaims, decode_access_token
from xiaopu.config import Settings
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.errors import (
    Forbidden,
    InsufficientScope,
    InvalidToken,
    SessionRevoked,
    SupplierNotFound,
    Unauthenticated,
)
from xiaopu.idempotency.service import set_principal
from xiaopu.models import MemberRole

_bearer = HTTPBearer(
    auto_error=False,
    description="An access token from /v1/auth/login, or a supplier API key (xpk_...).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True, slots=True)
class Person:
    """A signed-in person: shopkeeper and buyer; maybe also a supplier member or operator."""

    account_id: uuid.UUID
    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class SupplierCaller:
    """A supplier acting through one of its members or one of its API keys."""

    supplier_id: uuid.UUID
    account_id: uuid.UUID | None
    role: MemberRole | None
    api_key_id: uuid.UUID | None


def _token(credentials: Credentials) -> str:
    if credentials is None:
        raise Unauthenticated()
    return credentials.credentials


def _claims(request: Request, token: str, settings: Settings) -> AccessClaims:
    """The claims of a valid access token whose session was not revoked."""
    claims = decode_access_token(settings, token)
    revocations: SessionRevocations = request.app.state.revocations
    if claims.session_id in revocations:
        raise SessionRevoked()
    return claims


def _signed_in(request: Request, token: str, settings: Settings) -> Person:
    if token.startswith(API_KEY_PREFIX):
        raise InvalidToken("API keys act for a supplier, not for a person.")
    claims = _claims(request, token, settings)
    set_principal(request, f"account:{claims.account_id}")
    return Person(account_id=claims.account_id, session_id=claims.session_id)


async def _person(request: Request, credentials: Credentials, settings: AppSettings) -> Person:
    return _signed_in(request, _token(credentials), settings)


def optional_person(request: Request, settings: Settings) -> Person | None:
    """OptionalPerson for a route answered outside FastAPI's dependency injection: the bearer
    token read as HTTPBearer(auto_error=False) reads it."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        return None
    return _signed_in(request, token, settings)


CurrentPerson = Annotated[Person, Depends(_person)]


async def _maybe_person(
    request: Request, credentials: Credentials, settings: AppSettings
) -> Person | None:
    if credentials is None:
        return None
    return await _person(request, credentials, settings)


# Routes open to guests as well: None when no token is sent, 401 when a bad one is.
OptionalPerson = Annotated[Person | None, Depends(_maybe_person)]


async def _operator(person: CurrentPerson, session: DbSession) -> Person:
    if not await service.is_operator(session, person.account_id):
        raise Forbidden("Only operators may do this.")
    return person


CurrentOperator = Annotated[Person, Depends(_operator)]


class SupplierAccess:
    """Admits a supplier's members (owners only, if asked) and its API keys holding `scope`.

    Anyone else gets 404, as if the supplier did not exist.
    """

    def __init__(self, scope: Scope, *, owner_only: bool = False, members_only: bool = False):
        self.scope = scope
        self.owner_only = owner_only
        self.members_only = members_only or owner_only

    async def __call__(
        self,
        request: Request,
        supplier_id: uuid.UUID,
        credentials: Credentials,
        settings: AppSettings,
        session: DbSession,
    ) -> SupplierCaller:
        token = _token(credentials)
        if token.startswith(API_KEY_PREFIX):
            key = await service.authenticate_api_key(session, token)
            if key.supplier_id != supplier_id:
                raise SupplierNotFound()
            if self.members_only:
                raise Forbidden("This action needs a member's login, not an API key.")
            if not service.has_scope(key, self.scope):
                raise InsufficientScope(f"This action needs the {self.scope} scope.")
            set_principal(request, f"supplier:{supplier_id}")
            return SupplierCaller(supplier_id, None, None, key.id)
        claims = _claims(request, token, settings)
        role = await service.member_role(session, supplier_id, claims.account_id)
        if role is None:
            raise SupplierNotFound()
        if self.owner_only and role is not MemberRole.owner:
            raise Forbidden("Only the supplier's owners may do this.")
        set_principal(request, f"account:{claims.account_id}")
        return SupplierCaller(supplier_id, claims.account_id, role, None)


# Each domain declares its own aliases beside these, e.g. ProductWriter in catalogue/auth.py.
SupplierReader = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.supplier_read))]
SupplierOwner = Annotated[
    SupplierCaller, Depends(SupplierAccess(Scope.supplier_read, owner_only=True))
]
