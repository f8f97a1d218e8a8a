"""Request and response bodies of sign-up, login, token refresh and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from xiaopu.auth.scopes import Scope
from xiaopu.kit.contact import normalize_email, normalize_phone
from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.kit.text import DisplayName
from xiaopu.models import AccountStatus

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 128


def _check_password(value: str) -> str:
    if len(set(value)) < 4:
        raise ValueError("password is too simple: use more different characters")
    if value.isdigit():
        raise ValueError("password is too simple: do not use only digits")
    return value


Email = Annotated[str, Field(max_length=254), AfterValidator(normalize_email)]
Phone = Annotated[str, Field(max_length=32), AfterValidator(normalize_phone)]
Password = Annotated[
    str,
    Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH),
    AfterValidator(_check_password),
]


class SignupRequest(RequestModel):
    email: Email | None = None
    phone: Phone | None = None
    password: Password
    display_name: DisplayName | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"\S"
    )

    @model_validator(mode="after")
    def _needs_a_login(self) -> Self:
        if self.email is None and self.phone is None:
            raise ValueError("give an email address or a phone number")
        return self


class LoginRequest(RequestModel):
    login: str = Field(min_length=3, max_length=254, description="Email address or phone number.")
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=128)


class TokenPair(ResponseModel):
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name
    access_token: str
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str
    refresh_expires_at: datetime


class AccountOut(ResponseModel):
    id: uuid.UUID
    email: str | None
    phone: str | None
    display_name: str | None
    status: AccountStatus
    created_at: datetime


class SignupResponse(ResponseModel):
    account: AccountOut
    tokens: TokenPair


class ApiKeyCreate(RequestModel):
    name: DisplayName = Field(min_length=1, max_length=80, pattern=r"\S")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))


class ApiKeyOut(ResponseModel):
    id: uuid.UUID
    supplier_id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it by.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key. Shown once, never again: store it now.")
