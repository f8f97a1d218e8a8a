"""POST /v1/auth/login: by email or phone, uniform failures, throttling that counts failures."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import (
    app_client,
    assert_problem,
    assert_validation_error,
    login_ok,
    me,
    post_login,
    signup_ok,
    unique_phone,
)
from tests.conftest import make_settings
from tests.factories import PASSWORD, unique_email
from xiaopu.app import create_app
from xiaopu.auth.service import login_delay
from xiaopu.models import Account, AccountStatus

PAIR_LIMIT = 10  # settings.login_limit_per_account_ip defaults to "10/15minutes"
SLOW_MAX_MS = 80


def assert_rate_limited(response: httpx.Response, *, at_most: int) -> None:
    body = assert_problem(response, 429, "rate_limited")
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= at_most
    assert body["retry_after"] == retry_after


async def fail_logins(client: httpx.AsyncClient, login: str, times: int) -> None:
    for _ in range(times):
        response = await post_login(client, login, "wrong password 123")
        assert_problem(response, 401, "invalid_credentials")


async def test_login_by_email_issues_working_tokens(client: httpx.AsyncClient) -> None:
    email = unique_email()
    account = (await signup_ok(client, email=email))["account"]

    tokens = await login_ok(client, email)

    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("xpr_")
    response = await me(client, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["id"] == account["id"]


async def test_login_by_email_ignores_case(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup_ok(client, email=email)

    tokens = await login_ok(client, email.upper())

    assert tokens["access_token"]


@pytest.mark.parametrize("login", ["+8613800138000", "13800138000", "138 0013 8000"])
async def test_login_by_phone_in_any_spelling(client: httpx.AsyncClient, login: str) -> None:
    account = (await signup_ok(client, phone="13800138000"))["account"]

    tokens = await login_ok(client, login)

    response = await me(client, tokens["access_token"])
    assert response.json()["id"] == account["id"]


async def test_login_by_phone_of_an_account_that_also_has_an_email(
    client: httpx.AsyncClient,
) -> None:
    phone = unique_phone()
    await signup_ok(client, email=unique_email(), phone=phone)

    tokens = await login_ok(client, phone)

    assert tokens["access_token"]


async def test_each_login_issues_a_new_session(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup_ok(client, email=email)

    first = await login_ok(client, email)
    second = await login_ok(client, email)

    assert first["refresh_token"] != second["refresh_token"]
    assert first["access_token"] != second["access_token"]


async def test_wrong_password_is_invalid_credentials(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup_ok(client, email=email)

    response = await post_login(client, email, "not the password")

    assert_problem(response, 401, "invalid_credentials")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("login", ["nobody-here@example.com", "+8613912345678", "nobody"])
async def test_unknown_login_looks_like_a_wrong_password(
    client: httpx.AsyncClient, login: str
) -> None:
    email = unique_email()
    await signup_ok(client, email=email)
    wrong_password = await post_login(client, email, "not the password")

    response = await post_login(client, login)

    body = assert_problem(response, 401, "invalid_credentials")
    assert body == wrong_password.json()


async def test_password_is_case_sensitive(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup_ok(client, email=email)

    response = await post_login(client, email, PASSWORD.upper())

    assert_problem(response, 401, "invalid_credentials")


async def test_login_with_trailing_space_in_password_is_refused(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup_ok(client, email=email)

    response = await post_login(client, email, PASSWORD + " ")

    assert_problem(response, 401, "invalid_credentials")


async def test_disabled_account_cannot_log_in(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    email = unique_email()
    await signup_ok(client, email=email)
    await session.execute(
        update(Account).where(Account.email == email).values(status=AccountStatus.disabled)
    )
    await session.commit()

    response = await post_login(client, email)

    assert_problem(response, 403, "account_disabled")


@pytest.mark.parametrize(
    "body",
    [
        {"login": "a@example.com"},
        {"password": PASSWORD},
        {"login": "ab", "password": PASSWORD},
        {"login": "a@example.com", "password": ""},
        {"login": "a@example.com", "password": PASSWORD, "remember_me": True},
    ],
)
async def test_login_rejects_malformed_bodies(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await client.post("/v1/auth/login", json=body)

    assert_problem(response, 422, "validation_error")


async def test_login_names_the_unknown_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login", json={"login": "a@example.com", "password": PASSWORD, "otp": "1"}
    )

    assert_validation_error(response, "body", "otp")


# Throttling counts failures only: per account and client, per client, and a slow-down per
# account that never refuses.


async def test_twenty_correct_logins_in_a_row_all_succeed(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup_ok(client, email=email)

    for _ in range(2 * PAIR_LIMIT):
        await login_ok(client, email)


async def test_failures_below_the_pair_limit_do_not_block(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await signup_ok(client, email=email)
    await fail_logins(client, email, PAIR_LIMIT - 1)

    tokens = await login_ok(client, email)

    assert tokens["access_token"]


async def test_a_success_clears_the_clients_failures_on_the_account(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email()
    await signup_ok(client, email=email)
    await fail_logins(client, email, PAIR_LIMIT - 1)
    await login_ok(client, email)

    await fail_logins(client, email, PAIR_LIMIT - 1)

    assert (await login_ok(client, email))["access_token"]


async def test_a_client_that_keeps_failing_on_an_account_is_refused(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email()
    await signup_ok(client, email=email)
    await fail_logins(client, email, PAIR_LIMIT)

    response = await post_login(client, email)

    assert_rate_limited(response, at_most=15 * 60)


async def test_the_owner_gets_in_from_another_client_after_anothers_failures(
    slow_app: FastAPI,
) -> None:
    async with (
        app_client(slow_app, ip="198.51.100.1") as attacker,
        app_client(slow_app, ip="198.51.100.2") as owner,
    ):
        email = unique_email()
        await signup_ok(owner, email=email)
        await fail_logins(attacker, email, PAIR_LIMIT)
        assert_rate_limited(await post_login(attacker, email), at_most=15 * 60)

        started = time.monotonic()
        tokens = await login_ok(owner, email)
        elapsed = time.monotonic() - started

    assert tokens["access_token"]
    # Slowed down to the cap (10 failures against a threshold of 3), not locked out.
    assert elapsed >= SLOW_MAX_MS / 1000


async def test_failures_from_many_clients_slow_the_account_down_without_refusing(
    slow_app: FastAPI,
) -> None:
    limiter = slow_app.state.limiter
    settings = slow_app.state.settings
    email = unique_email()
    async with app_client(slow_app, ip="198.51.100.9") as owner:
        await signup_ok(owner, email=email)
    delays = [await login_delay(settings, limiter, email)]
    for n in range(6):
        async with app_client(slow_app, ip=f"198.51.100.{20 + n}") as guesser:
            await fail_logins(guesser, email, 1)
        delays.append(await login_delay(settings, limiter, email))

    # No delay below 3 failures, then 20 ms doubling per failure, capped at 80 ms.
    assert delays == [0, 0, 0, 0.02, 0.04, 0.08, 0.08]
    async with app_client(slow_app, ip="198.51.100.9") as owner:
        started = time.monotonic()
        assert (await login_ok(owner, email))["access_token"]
        assert time.monotonic() - started >= 0.08


async def test_the_slow_down_counts_the_email_and_phone_of_one_account_together(
    slow_app: FastAPI,
) -> None:
    email, phone = unique_email(), unique_phone()
    async with app_client(slow_app, ip="198.51.100.3") as guesser:
        await signup_ok(guesser, email=email, phone=phone)
        await fail_logins(guesser, phone, 4)

    limiter, settings = slow_app.state.limiter, slow_app.state.settings
    assert await login_delay(settings, limiter, email) == 0.04
    assert await login_delay(settings, limiter, phone) == 0.04


async def test_pair_limit_counts_every_spelling_of_the_email(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email()
    await signup_ok(client, email=email)
    await fail_logins(client, email.upper(), PAIR_LIMIT // 2)
    await fail_logins(client, email, PAIR_LIMIT - PAIR_LIMIT // 2)

    response = await post_login(client, email.title())

    assert_rate_limited(response, at_most=15 * 60)


async def test_pair_limit_counts_every_spelling_of_the_phone(
    client: httpx.AsyncClient,
) -> None:
    await signup_ok(client, phone="+8613800138000")
    await fail_logins(client, "13800138000", PAIR_LIMIT // 2)
    await fail_logins(client, "+86 138 0013 8000", PAIR_LIMIT - PAIR_LIMIT // 2)

    response = await post_login(client, "+8613800138000")

    assert_rate_limited(response, at_most=15 * 60)


async def test_pair_limit_applies_to_unknown_logins_too(client: httpx.AsyncClient) -> None:
    login = unique_email()
    await fail_logins(client, login, PAIR_LIMIT)

    response = await post_login(client, login)

    assert_rate_limited(response, at_most=15 * 60)


async def test_pair_limit_leaves_the_clients_other_accounts_alone(
    client: httpx.AsyncClient,
) -> None:
    attacked, other = unique_email(), unique_email()
    await signup_ok(client, email=attacked)
    await signup_ok(client, email=other)
    await fail_logins(client, attacked, PAIR_LIMIT)

    tokens = await login_ok(client, other)

    assert tokens["access_token"]


async def test_pair_limit_is_shared_by_the_email_and_phone_of_one_account(
    client: httpx.AsyncClient,
) -> None:
    email, phone = unique_email(), unique_phone()
    await signup_ok(client, email=email, phone=phone)
    await fail_logins(client, email, PAIR_LIMIT // 2)
    await fail_logins(client, phone, PAIR_LIMIT - PAIR_LIMIT // 2)

    response = await post_login(client, email, "yet another guess 1")

    assert_rate_limited(response, at_most=15 * 60)


@pytest.mark.concurrent
async def test_pair_limit_holds_against_parallel_guesses(
    concurrent_client: httpx.AsyncClient,
) -> None:
    email = unique_email()
    await signup_ok(concurrent_client, email=email)

    responses = await asyncio.gather(
        *(post_login(concurrent_client, email, f"guess number {i}") for i in range(30))
    )

    statuses = [r.status_code for r in responses]
    assert statuses.count(401) <= PAIR_LIMIT, statuses
    assert statuses.count(429) == 30 - statuses.count(401), statuses


# Per-IP throttling, on an app of its own with a small limit.


@pytest.fixture
def small_ip_limit_app(main_db_url: str, sessionmaker: async_sessionmaker[AsyncSession]) -> FastAPI:
    """The real app on the test transaction, allowing 3 failed logins per IP a minute."""
    settings = make_settings(main_db_url, login_limit_per_ip="3/minute")
    return create_app(settings, sessionmaker=sessionmaker)


@pytest.fixture
def slow_app(main_db_url: str, sessionmaker: async_sessionmaker[AsyncSession]) -> FastAPI:
    """The real app on the test transaction, slowing an account after 3 failures, briefly."""
    settings = make_settings(
        main_db_url,
        login_slowdown_after="3/15minutes",
        login_slowdown_base_ms=20,
        login_slowdown_max_ms=SLOW_MAX_MS,
    )
    return create_app(settings, sessionmaker=sessionmaker)


async def test_ip_limit_blocks_the_address_across_accounts(small_ip_limit_app: FastAPI) -> None:
    async with app_client(small_ip_limit_app, ip="198.51.100.1") as client:
        victim = unique_email()
        await signup_ok(client, email=victim)
        for _ in range(3):
            response = await post_login(client, unique_email(), "guess guess 1")
            assert_problem(response, 401, "invalid_credentials")

        response = await post_login(client, victim)

    assert_rate_limited(response, at_most=60)


async def test_ip_limit_leaves_other_addresses_alone(small_ip_limit_app: FastAPI) -> None:
    async with (
        app_client(small_ip_limit_app, ip="198.51.100.1") as attacker,
        app_client(small_ip_limit_app, ip="198.51.100.2") as neighbour,
    ):
        email = unique_email()
        await signup_ok(neighbour, email=email)
        for _ in range(3):
            await post_login(attacker, unique_email(), "guess guess 1")
        assert_rate_limited(await post_login(attacker, unique_email()), at_most=60)

        tokens = await login_ok(neighbour, email)

    assert tokens["access_token"]


async def test_successful_logins_do_not_count_toward_the_ip_limit(
    small_ip_limit_app: FastAPI,
) -> None:
    async with app_client(small_ip_limit_app) as client:
        email = unique_email()
        await signup_ok(client, email=email)
        for _ in range(6):
            await login_ok(client, email)
        await fail_logins(client, email, 2)

        tokens = await login_ok(client, email)

    assert tokens["access_token"]
