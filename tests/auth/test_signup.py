"""POST /v1/auth/signup: validation, normalisation of logins, duplicates and the tokens issued."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import (
    assert_problem,
    assert_validation_error,
    me,
    post_signup,
    signup_ok,
    unique_phone,
)
from tests.factories import unique_email
from xiaopu.models import Account


async def test_signup_with_email_returns_active_account_and_working_tokens(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email()

    body = await signup_ok(client, email=email, display_name="Xiao Li")

    account = body["account"]
    assert account["email"] == email
    assert account["phone"] is None
    assert account["display_name"] == "Xiao Li"
    assert account["status"] == "active"
    assert "password" not in account
    assert "password_hash" not in account
    tokens = body["tokens"]
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("xpr_")
    response = await me(client, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["id"] == account["id"]


async def test_signup_stores_an_argon2id_hash_not_the_password(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    email = unique_email()
    await signup_ok(client, email=email, password="my secret pass 1")

    stored = await session.scalar(select(Account.password_hash).where(Account.email == email))

    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "my secret pass 1" not in stored


async def test_signup_lower_cases_the_email(client: httpx.AsyncClient) -> None:
    body = await signup_ok(client, email="Xiao.Li@Example.COM")

    assert body["account"]["email"] == "xiao.li@example.com"


@pytest.mark.parametrize(
    "phone",
    ["+8613800138000", "13800138000", "138 0013 8000", "+86 138-0013-8000", "008613800138000"],
)
async def test_signup_with_phone_normalises_to_e164(client: httpx.AsyncClient, phone: str) -> None:
    body = await signup_ok(client, phone=phone)

    assert body["account"]["phone"] == "+8613800138000"
    assert body["account"]["email"] is None


async def test_signup_with_email_and_phone_keeps_both(client: httpx.AsyncClient) -> None:
    email, phone = unique_email(), unique_phone()

    body = await signup_ok(client, email=email, phone=phone)

    assert (body["account"]["email"], body["account"]["phone"]) == (email, phone)


@pytest.mark.parametrize(
    "email", ["not-an-email", "user@localhost", "user@@example.com", "@example.com", ""]
)
async def test_signup_rejects_a_bad_email(client: httpx.AsyncClient, email: str) -> None:
    response = await post_signup(client, email=email)

    assert_validation_error(response, "body", "email")


@pytest.mark.parametrize("phone", ["12345", "not a phone", "+86138001380001234", "+999123456789"])
async def test_signup_rejects_a_bad_phone(client: httpx.AsyncClient, phone: str) -> None:
    response = await post_signup(client, phone=phone)

    assert_validation_error(response, "body", "phone")


async def test_signup_needs_an_email_or_a_phone(client: httpx.AsyncClient) -> None:
    response = await post_signup(client)

    body = assert_validation_error(response, "body")
    assert "email address or a phone number" in body["errors"][0]["msg"]


async def test_signup_with_explicit_nulls_needs_an_email_or_a_phone(
    client: httpx.AsyncClient,
) -> None:
    response = await post_signup(client, email=None, phone=None)

    assert_validation_error(response, "body")


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Ab1!xyz", "too short"),
        ("Abcdefgh1", "nine characters: one too short"),
        ("13800138000", "only digits"),
        ("abababababab", "too few distinct characters"),
        ("aaaaaaaaaaaa", "one character repeated"),
        ("x" * 129, "too long"),
    ],
)
async def test_signup_rejects_a_weak_password(
    client: httpx.AsyncClient, password: str, why: str
) -> None:
    response = await post_signup(client, email=unique_email(), password=password)

    assert_validation_error(response, "body", "password")


async def test_signup_accepts_a_ten_character_password_of_four_distinct_characters(
    client: httpx.AsyncClient,
) -> None:
    body = await signup_ok(client, email=unique_email(), password="abcdabcdab")

    assert body["account"]["status"] == "active"


async def test_signup_requires_a_password(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/signup", json={"email": unique_email()})

    assert_validation_error(response, "body", "password")


async def test_signup_rejects_a_duplicate_email_in_any_case(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup_ok(client, email=email)

    response = await post_signup(client, email=email.upper())

    assert_problem(response, 409, "account_exists")


async def test_signup_rejects_a_duplicate_phone_in_another_spelling(
    client: httpx.AsyncClient,
) -> None:
    await signup_ok(client, phone="+8613800138000")

    response = await post_signup(client, phone="138 0013 8000")

    assert_problem(response, 409, "account_exists")


async def test_signup_rejects_a_new_email_with_a_taken_phone(client: httpx.AsyncClient) -> None:
    phone = unique_phone()
    await signup_ok(client, phone=phone)

    response = await post_signup(client, email=unique_email(), phone=phone)

    assert_problem(response, 409, "account_exists")


async def test_signup_of_a_duplicate_creates_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    email, phone = unique_email(), unique_phone()
    await signup_ok(client, email=email)

    response = await post_signup(client, email=email, phone=phone)

    assert_problem(response, 409, "account_exists")
    assert await session.scalar(select(Account.id).where(Account.phone == phone)) is None


@pytest.mark.parametrize(
    ("field", "value"), [("status", "disabled"), ("id", "0" * 32), ("is_operator", True)]
)
async def test_signup_rejects_unknown_fields(
    client: httpx.AsyncClient, field: str, value: object
) -> None:
    response = await post_signup(client, email=unique_email(), **{field: value})

    body = assert_validation_error(response, "body", field)
    assert body["errors"][0]["type"] == "extra_forbidden"


async def test_signup_rejects_a_blank_display_name(client: httpx.AsyncClient) -> None:
    response = await post_signup(client, email=unique_email(), display_name="   ")

    assert_validation_error(response, "body", "display_name")


async def test_signup_with_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/signup",
        content=b'{"email": "a@example.com", ',
        headers={"content-type": "application/json"},
    )

    assert_problem(response, 400, "invalid_json")


@pytest.mark.concurrent
async def test_racing_signups_for_one_email_create_one_account(
    concurrent_client: httpx.AsyncClient,
) -> None:
    email = unique_email()

    responses = await asyncio.gather(
        *(post_signup(concurrent_client, email=email) for _ in range(5))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "account_exists")
