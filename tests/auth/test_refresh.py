"""POST /v1/auth/refresh and /v1/auth/logout: rotation, reuse detection, expiry and revocation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import (
    assert_problem,
    assert_validation_error,
    login_ok,
    me,
    post_refresh,
    signup_ok,
)
from tests.factories import unique_email
from xiaopu.kit.clock import Clock, utcnow
from xiaopu.models import Account, AccountStatus


async def refresh_ok(client: httpx.AsyncClient, refresh_token: str) -> dict[str, Any]:
    response = await post_refresh(client, refresh_token)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def logout(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/auth/logout", json={"refresh_token": refresh_token})


async def new_login(client: httpx.AsyncClient) -> tuple[str, str]:
    """(email, refresh token) of a new account's sign-up session."""
    email = unique_email()
    body = await signup_ok(client, email=email)
    return email, str(body["tokens"]["refresh_token"])


async def test_refresh_rotates_the_refresh_token(client: httpx.AsyncClient) -> None:
    _, first = await new_login(client)

    tokens = await refresh_ok(client, first)

    assert tokens["refresh_token"].startswith("xpr_")
    assert tokens["refresh_token"] != first
    assert (await me(client, tokens["access_token"])).status_code == 200


async def test_refresh_token_lives_thirty_days(client: httpx.AsyncClient) -> None:
    _, first = await new_login(client)

    tokens = await refresh_ok(client, first)

    expires_at = datetime.fromisoformat(tokens["refresh_expires_at"])
    assert abs(expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    assert tokens["expires_in"] == 900


async def test_a_rotation_chain_keeps_working(client: httpx.AsyncClient) -> None:
    _, token = await new_login(client)

    for _ in range(3):
        token = (await refresh_ok(client, token))["refresh_token"]

    assert (await refresh_ok(client, token))["access_token"]


async def test_reusing_a_spent_token_is_detected(client: httpx.AsyncClient) -> None:
    _, first = await new_login(client)
    await refresh_ok(client, first)

    response = await post_refresh(client, first)

    assert_problem(response, 401, "refresh_token_reused")


async def test_reuse_revokes_the_whole_family(client: httpx.AsyncClient) -> None:
    _, first = await new_login(client)
    second = (await refresh_ok(client, first))["refresh_token"]
    assert_problem(await post_refresh(client, first), 401, "refresh_token_reused")

    response = await post_refresh(client, second)

    assert_problem(response, 401, "invalid_refresh_token")


async def test_reuse_spares_the_accounts_other_sessions(client: httpx.AsyncClient) -> None:
    email, first = await new_login(client)
    other_session = (await login_ok(client, email))["refresh_token"]
    await refresh_ok(client, first)
    assert_problem(await post_refresh(client, first), 401, "refresh_token_reused")

    tokens = await refresh_ok(client, other_session)

    assert tokens["refresh_token"] != other_session


async def test_reusing_a_token_of_a_revoked_family_stays_refused(
    client: httpx.AsyncClient,
) -> None:
    _, first = await new_login(client)
    await refresh_ok(client, first)
    assert_problem(await post_refresh(client, first), 401, "refresh_token_reused")

    response = await post_refresh(client, first)

    assert_problem(response, 401, "invalid_refresh_token")


async def test_an_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, test_clock: Clock
) -> None:
    _, first = await new_login(client)
    test_clock.advance(timedelta(days=31))

    response = await post_refresh(client, first)

    assert_problem(response, 401, "invalid_refresh_token")


async def test_a_refresh_token_still_works_before_it_expires(
    client: httpx.AsyncClient, test_clock: Clock
) -> None:
    _, first = await new_login(client)
    test_clock.advance(timedelta(days=29))

    tokens = await refresh_ok(client, first)

    assert (await me(client, tokens["access_token"])).status_code == 200


async def test_an_unknown_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await post_refresh(client, "xpr_" + "A" * 43)

    assert_problem(response, 401, "invalid_refresh_token")


async def test_an_access_token_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    body = await signup_ok(client, email=unique_email())

    response = await post_refresh(client, body["tokens"]["access_token"][:128])

    assert_problem(response, 401, "invalid_refresh_token")


@pytest.mark.parametrize("token", ["", "x" * 129])
async def test_refresh_rejects_a_malformed_body(client: httpx.AsyncClient, token: str) -> None:
    response = await post_refresh(client, token)

    assert_validation_error(response, "body", "refresh_token")


async def test_a_disabled_account_cannot_refresh(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    email, first = await new_login(client)
    await session.execute(
        update(Account).where(Account.email == email).values(status=AccountStatus.disabled)
    )
    await session.commit()

    response = await post_refresh(client, first)

    assert_problem(response, 401, "invalid_refresh_token")


async def test_logout_revokes_the_session(client: httpx.AsyncClient) -> None:
    _, first = await new_login(client)

    response = await logout(client, first)

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await post_refresh(client, first), 401, "invalid_refresh_token")


async def test_logout_revokes_the_whole_family(client: httpx.AsyncClient) -> None:
    _, first = await new_login(client)
    second = (await refresh_ok(client, first))["refresh_token"]
    third = (await refresh_ok(client, second))["refresh_token"]

    assert (await logout(client, second)).status_code == 204

    assert_problem(await post_refresh(client, third), 401, "invalid_refresh_token")


async def test_logout_spares_the_accounts_other_sessions(client: httpx.AsyncClient) -> None:
    email, first = await new_login(client)
    other_session = (await login_ok(client, email))["refresh_token"]

    assert (await logout(client, first)).status_code == 204

    assert (await refresh_ok(client, other_session))["access_token"]


async def test_logout_with_an_unknown_token_is_a_no_op(client: httpx.AsyncClient) -> None:
    response = await logout(client, "xpr_" + "B" * 43)

    assert response.status_code == 204


@pytest.mark.concurrent
async def test_two_racing_refreshes_of_one_token_end_the_session(
    concurrent_client: httpx.AsyncClient,
) -> None:
    _, first = await new_login(concurrent_client)

    responses = await asyncio.gather(
        post_refresh(concurrent_client, first), post_refresh(concurrent_client, first)
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 401], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()
    loser = next(r for r in responses if r.status_code == 401)
    assert_problem(loser, 401, "refresh_token_reused")
    # The loser's detection revoked the family, including the token the winner just got.
    response = await post_refresh(concurrent_client, winner["refresh_token"])
    assert_problem(response, 401, "invalid_refresh_token")
