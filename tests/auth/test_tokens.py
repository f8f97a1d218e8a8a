"""Access tokens on GET /v1/me: signature, algorithm, audience, issuer, claims and expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import (
    access_claims,
    assert_problem,
    forge,
    me,
    signup_ok,
    timestamp,
    with_flipped_signature,
    with_payload,
)
from tests.factories import api_key, bearer, supplier, unique_email
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock, utcnow
from xiaopu.models import Account

OTHER_KEY = "another-secret-of-at-least-32-bytes-0123456789"


@pytest.fixture
async def account(client: httpx.AsyncClient) -> dict[str, Any]:
    """A new account and its tokens, as sign-up returns them."""
    return await signup_ok(client, email=unique_email())


def account_id(account: dict[str, Any]) -> str:
    return str(account["account"]["id"])


def access_token(account: dict[str, Any]) -> str:
    return str(account["tokens"]["access_token"])


async def test_me_with_a_valid_token(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    response = await me(client, access_token(account))

    assert response.status_code == 200, response.text
    assert response.json() == account["account"]


async def test_me_without_a_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/me")

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_me_with_another_scheme_is_unauthenticated(
    client: httpx.AsyncClient, account: dict[str, Any]
) -> None:
    response = await client.get(
        "/v1/me", headers={"Authorization": f"Basic {access_token(account)}"}
    )

    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "xpr_abc"])
async def test_me_with_a_malformed_token_is_invalid(client: httpx.AsyncClient, token: str) -> None:
    response = await me(client, token)

    assert_problem(response, 401, "invalid_token")


async def test_a_token_forged_with_the_right_key_is_accepted(
    client: httpx.AsyncClient, settings: Settings, account: dict[str, Any]
) -> None:
    """Checks the forging helper, so the rejections below fail for the reason they name."""
    token = forge(access_claims(settings, account_id(account)), settings.jwt_key)

    response = await me(client, token)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == account_id(account)


async def test_a_flipped_signature_is_invalid(
    client: httpx.AsyncClient, account: dict[str, Any]
) -> None:
    response = await me(client, with_flipped_signature(access_token(account)))

    assert_problem(response, 401, "invalid_token")


async def test_a_payload_changed_under_its_signature_is_invalid(
    client: httpx.AsyncClient, account: dict[str, Any]
) -> None:
    victim = await signup_ok(client, email=unique_email())
    tampered = with_payload(access_token(account), sub=account_id(victim))

    response = await me(client, tampered)

    assert_problem(response, 401, "invalid_token")


async def test_an_expired_token_is_refused(
    client: httpx.AsyncClient, account: dict[str, Any], test_clock: Clock
) -> None:
    test_clock.advance(timedelta(minutes=16))

    response = await me(client, access_token(account))

    assert_problem(response, 401, "token_expired")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_token_just_past_expiry_is_within_the_leeway(
    client: httpx.AsyncClient, account: dict[str, Any], test_clock: Clock
) -> None:
    test_clock.advance(timedelta(minutes=15, seconds=10))

    response = await me(client, access_token(account))

    assert response.status_code == 200, response.text


async def test_an_unsigned_alg_none_token_is_invalid(
    client: httpx.AsyncClient, settings: Settings, account: dict[str, Any]
) -> None:
    token = forge(access_claims(settings, account_id(account)), None, algorithm="none")

    response = await me(client, token)

    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "someone-else"}, id="wrong audience"),
        pytest.param({"iss": "someone-else"}, id="wrong issuer"),
        pytest.param({"aud": None}, id="no audience"),
        pytest.param({"iss": None}, id="no issuer"),
        pytest.param({"sid": None}, id="no session id"),
        pytest.param({"exp": None}, id="no expiry"),
        pytest.param({"iat": None}, id="no issued-at"),
        pytest.param({"sub": "not-a-uuid"}, id="subject not a uuid"),
        pytest.param({"sid": "not-a-uuid"}, id="session id not a uuid"),
        pytest.param({"exp": "tomorrow"}, id="expiry not a number"),
        pytest.param({"exp": 10**20}, id="expiry out of range"),
    ],
)
async def test_bad_claims_signed_with_the_right_key_are_invalid(
    client: httpx.AsyncClient,
    settings: Settings,
    account: dict[str, Any],
    overrides: dict[str, Any],
) -> None:
    token = forge(access_claims(settings, account_id(account), **overrides), settings.jwt_key)

    response = await me(client, token)

    assert_problem(response, 401, "invalid_token")


async def test_a_token_issued_in_the_future_is_invalid(
    client: httpx.AsyncClient, settings: Settings, account: dict[str, Any]
) -> None:
    later = utcnow() + timedelta(minutes=5)
    claims = access_claims(
        settings,
        account_id(account),
        iat=timestamp(later),
        exp=timestamp(later + timedelta(minutes=15)),
    )

    response = await me(client, forge(claims, settings.jwt_key))

    assert_problem(response, 401, "invalid_token")


async def test_a_token_signed_with_another_key_is_invalid(
    client: httpx.AsyncClient, settings: Settings, account: dict[str, Any]
) -> None:
    token = forge(access_claims(settings, account_id(account)), OTHER_KEY)

    response = await me(client, token)

    assert_problem(response, 401, "invalid_token")


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # PyJWT: our key is short for HS512
async def test_a_token_with_another_hmac_algorithm_is_invalid(
    client: httpx.AsyncClient, settings: Settings, account: dict[str, Any]
) -> None:
    token = forge(access_claims(settings, account_id(account)), settings.jwt_key, "HS512")

    response = await me(client, token)

    assert_problem(response, 401, "invalid_token")


async def test_an_api_key_is_not_an_access_token(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, ["supplier:read"])

    response = await client.get("/v1/me", headers=bearer(key["key"]))

    assert_problem(response, 401, "invalid_token")


async def test_the_token_of_a_deleted_account_is_invalid(
    client: httpx.AsyncClient, session: AsyncSession, account: dict[str, Any]
) -> None:
    await session.execute(delete(Account).where(Account.id == uuid.UUID(account_id(account))))
    await session.commit()

    response = await me(client, access_token(account))

    assert_problem(response, 401, "invalid_token")
