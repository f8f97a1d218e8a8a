"""Revoked sessions: their access tokens are refused at once here and within seconds elsewhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.auth.helpers import app_client, assert_problem, login_ok, me, post_refresh, signup_ok
from tests.conftest import make_settings
from tests.factories import bearer, supplier, unique_email
from xiaopu.app import XiaopuApp, create_app
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.kit.clock import Clock


async def logout(client: httpx.AsyncClient, refresh_token: str) -> None:
    response = await client.post("/v1/auth/logout", json={"refresh_token": refresh_token})
    assert response.status_code == 204, response.text


async def new_session(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    """(email, tokens) of a new account's sign-up session."""
    email = unique_email()
    body = await signup_ok(client, email=email)
    return email, body["tokens"]


def assert_revoked(response: httpx.Response) -> None:
    assert_problem(response, 401, "session_revoked")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_an_access_token_is_refused_right_after_logout(client: httpx.AsyncClient) -> None:
    _, tokens = await new_session(client)
    assert (await me(client, tokens["access_token"])).status_code == 200

    await logout(client, tokens["refresh_token"])

    assert_revoked(await me(client, tokens["access_token"]))


async def test_logout_spares_the_accounts_other_sessions(client: httpx.AsyncClient) -> None:
    email, tokens = await new_session(client)
    other = await login_ok(client, email)

    await logout(client, tokens["refresh_token"])

    assert (await me(client, other["access_token"])).status_code == 200


async def test_refresh_token_reuse_ends_every_access_token_of_the_session(
    client: httpx.AsyncClient,
) -> None:
    _, first = await new_session(client)
    second = (await post_refresh(client, first["refresh_token"])).json()
    assert (await me(client, second["access_token"])).status_code == 200

    assert_problem(await post_refresh(client, first["refresh_token"]), 401, "refresh_token_reused")

    assert_revoked(await me(client, first["access_token"]))
    assert_revoked(await me(client, second["access_token"]))


async def test_a_revoked_session_cannot_act_for_a_supplier(client: httpx.AsyncClient) -> None:
    _, tokens = await new_session(client)
    owner = bearer(tokens["access_token"])
    supplier_id, _ = await supplier(client, owner)
    assert (await client.get(f"/v1/suppliers/{supplier_id}", headers=owner)).status_code == 200

    await logout(client, tokens["refresh_token"])

    assert_revoked(await client.get(f"/v1/suppliers/{supplier_id}", headers=owner))


async def test_a_revoked_session_cannot_check_out(client: httpx.AsyncClient) -> None:
    _, tokens = await new_session(client)
    await logout(client, tokens["refresh_token"])

    # Checkout is answered ahead of FastAPI's routing (orders/checkout_route.py); the caller is
    # checked before the body's contents are.
    response = await client.post(
        "/v1/orders",
        json={},
        headers={**bearer(tokens["access_token"]), "Idempotency-Key": "revoked-checkout-1"},
    )

    assert_revoked(response)


@asynccontextmanager
async def running_app(url: str, **overrides: object) -> AsyncIterator[XiaopuApp]:
    """A process of the service: the app on its own engine, its lifespan (and poller) running."""
    settings = make_settings(url, **overrides)
    engine = create_engine(settings)
    app = create_app(settings, sessionmaker=create_sessionmaker(engine))
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        await engine.dispose()


POLL = 0.2


@pytest.mark.concurrent
async def test_another_process_refuses_a_revoked_session_within_the_poll_interval(
    fresh_db_url: str,
) -> None:
    async with (
        running_app(fresh_db_url, session_revocation_poll_seconds=POLL) as first,
        running_app(fresh_db_url, session_revocation_poll_seconds=POLL) as second,
        app_client(first) as here,
        app_client(second) as there,
    ):
        _, tokens = await new_session(here)
        _, kept = await new_session(here)
        assert (await me(there, tokens["access_token"])).status_code == 200

        await logout(here, tokens["refresh_token"])
        started = time.monotonic()
        while (response := await me(there, tokens["access_token"])).status_code == 200:
            assert time.monotonic() - started < 10 * POLL, "still accepted by the other process"
            await asyncio.sleep(POLL / 10)

        assert_revoked(response)
        assert (await me(there, kept["access_token"])).status_code == 200


@pytest.mark.concurrent
async def test_a_process_started_after_a_logout_refuses_the_session_at_once(
    fresh_db_url: str,
) -> None:
    async with running_app(fresh_db_url) as first, app_client(first) as here:
        _, tokens = await new_session(here)
        _, kept = await new_session(here)
        await logout(here, tokens["refresh_token"])

        async with running_app(fresh_db_url) as later, app_client(later) as there:
            assert_revoked(await me(there, tokens["access_token"]))
            assert (await me(there, kept["access_token"])).status_code == 200


@pytest.mark.concurrent
async def test_revocations_are_forgotten_once_their_tokens_have_expired(
    fresh_db_url: str, test_clock: Clock
) -> None:
    async with running_app(fresh_db_url) as app, app_client(app) as client:
        _, tokens = await new_session(client)
        await logout(client, tokens["refresh_token"])
        revocations = app.state.revocations
        await revocations.load()
        assert len(revocations) == 1

        # Past the token's lifetime and the leeway, its expiry refuses it anyway.
        test_clock.advance(timedelta(minutes=20))
        await revocations.load()

        assert len(revocations) == 0
        assert_problem(await me(client, tokens["access_token"]), 401, "token_expired")
