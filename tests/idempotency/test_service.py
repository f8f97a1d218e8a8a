"""Idempotency-Key: first answer stored and replayed, reuse refused, keys scoped to the caller."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import assert_problem
from tests.idempotency.helpers import (
    CRASHING,
    FAILING,
    OPTIONAL,
    OTHER,
    REQUIRED,
    Api,
    api_client,
    assert_replay_of,
    build_app,
    new_caller,
    new_key,
    owned_suppliers,
    owned_via_api,
    post,
    stored_keys,
)
from xiaopu.config import Settings


async def test_a_first_request_has_its_effect_and_a_retry_replays_it(
    api: Api, session: AsyncSession
) -> None:
    caller = await new_caller(api.client)
    key = new_key()

    first = await post(api.client, REQUIRED, caller, key, name="Once Farm")

    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert first.json()["name"] == "Once Farm"
    assert await owned_suppliers(session, caller.account_id) == 1

    retry = await post(api.client, REQUIRED, caller, key, name="Once Farm")

    assert_replay_of(retry, first)
    assert retry.headers["content-type"].startswith("application/json")
    assert await owned_suppliers(session, caller.account_id) == 1
    assert api.controls.calls["suppliers"] == 1


async def test_every_retry_replays_the_same_answer(api: Api, session: AsyncSession) -> None:
    caller = await new_caller(api.client)
    key = new_key()
    first = await post(api.client, REQUIRED, caller, key)
    assert first.status_code == 201, first.text

    for _ in range(3):
        assert_replay_of(await post(api.client, REQUIRED, caller, key), first)

    assert await owned_suppliers(session, caller.account_id) == 1
    assert [item["supplier"]["id"] for item in await owned_via_api(api.client, caller)] == [
        first.json()["id"]
    ]


async def test_the_first_answer_is_stored_for_the_caller(api: Api, session: AsyncSession) -> None:
    caller = await new_caller(api.client)
    key = new_key()

    first = await post(api.client, REQUIRED, caller, key)

    assert first.status_code == 201, first.text
    (record,) = await stored_keys(session, f"account:{caller.account_id}")
    assert record.key == key
    assert record.method == "POST"
    assert record.path == REQUIRED
    assert record.response_status == 201
    assert record.response_body == first.json()
    assert len(record.fingerprint) == 32


async def test_different_keys_are_different_requests(api: Api, session: AsyncSession) -> None:
    caller = await new_caller(api.client)

    first = await post(api.client, REQUIRED, caller, new_key())
    second = await post(api.client, REQUIRED, caller, new_key())

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert await owned_suppliers(session, caller.account_id) == 2


async def test_the_same_key_with_another_body_is_refused(api: Api, session: AsyncSession) -> None:
    caller = await new_caller(api.client)
    key = new_key()
    first = await post(api.client, REQUIRED, caller, key, name="First Farm")
    assert first.status_code == 201, first.text

    response = await post(api.client, REQUIRED, caller, key, name="Second Farm")

    assert_problem(response, 422, "idempotency_key_reused")
    assert "Idempotent-Replayed" not in response.headers
    assert await owned_suppliers(session, caller.account_id) == 1
    # The refusal does not replace the stored answer.
    assert_replay_of(await post(api.client, REQUIRED, caller, key, name="First Farm"), first)


async def test_the_same_json_however_spaced_is_a_replay(api: Api, session: AsyncSession) -> None:
    caller = await new_caller(api.client)
    key = new_key()
    first = await post(api.client, REQUIRED, caller, key, content=b'{"name": "Byte Farm"}')
    assert first.status_code == 201, first.text

    same = await post(api.client, REQUIRED, caller, key, content=b'{"name": "Byte Farm"}')
    spaced = await post(api.client, REQUIRED, caller, key, content=b'{"name":"Byte Farm"}')
    other = await post(api.client, REQUIRED, caller, key, content=b'{"name":"Other Farm"}')

    assert_replay_of(same, first)
    assert_replay_of(spaced, first)
    assert_problem(other, 422, "idempotency_key_reused")
    assert await owned_suppliers(session, caller.account_id) == 1


async def test_the_same_key_on_another_path_is_refused(api: Api, session: AsyncSession) -> None:
    caller = await new_caller(api.client)
    key = new_key()
    first = await post(api.client, REQUIRED, caller, key)
    assert first.status_code == 201, first.text

    response = await post(api.client, OTHER, caller, key)

    assert_problem(response, 422, "idempotency_key_reused")
    assert await owned_suppliers(session, caller.account_id) == 1


async def test_a_key_used_on_the_optional_route_is_refused_on_another(
    api: Api, session: AsyncSession
) -> None:
    caller = await new_caller(api.client)
    key = new_key()
    first = await post(api.client, OPTIONAL, caller, key)
    assert first.status_code == 201, first.text

    response = await post(api.client, REQUIRED, caller, key)

    assert_problem(response, 422, "idempotency_key_reused")
    assert await owned_suppliers(session, caller.account_id) == 1


async def test_keys_are_scoped_to_the_caller(api: Api, session: AsyncSession) -> None:
    alice = await new_caller(api.client)
    bob = await new_caller(api.client)
    key = new_key()

    for_alice = await post(api.client, REQUIRED, alice, key)
    for_bob = await post(api.client, REQUIRED, bob, key)

    assert for_alice.status_code == for_bob.status_code == 201
    assert "Idempotent-Replayed" not in for_bob.headers
    assert for_alice.json()["id"] != for_bob.json()["id"]
    assert await owned_suppliers(session, alice.account_id) == 1
    assert await owned_suppliers(session, bob.account_id) == 1
    # Each one's retry replays their own answer.
    assert_replay_of(await post(api.client, REQUIRED, alice, key), for_alice)
    assert_replay_of(await post(api.client, REQUIRED, bob, key), for_bob)


async def test_another_caller_may_send_another_body_with_the_same_key(
    api: Api, session: AsyncSession
) -> None:
    alice = await new_caller(api.client)
    bob = await new_caller(api.client)
    key = new_key()
    assert (await post(api.client, REQUIRED, alice, key, name="Alice Farm")).status_code == 201

    response = await post(api.client, REQUIRED, bob, key, name="Bob Farm")

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Bob Farm"
    assert await owned_suppliers(session, bob.account_id) == 1


async def test_a_missing_key_on_a_required_route_is_refused(
    api: Api, session: AsyncSession
) -> None:
    caller = await new_caller(api.client)

    response = await post(api.client, REQUIRED, caller, None)

    assert_problem(response, 400, "idempotency_key_missing")
    assert await owned_suppliers(session, caller.account_id) == 0
    assert api.controls.calls.get("suppliers", 0) == 0


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("two words", id="space"),
        pytest.param("tab\there", id="tab"),
        pytest.param("clé".encode(), id="non-ascii-utf8"),
        pytest.param("clé".encode("latin-1"), id="non-ascii-latin1"),
        pytest.param(b"del\x7f", id="del"),
    ],
)
async def test_an_invalid_key_is_refused(api: Api, session: AsyncSession, key: str | bytes) -> None:
    caller = await new_caller(api.client)

    for path in (REQUIRED, OPTIONAL):
        response = await post(api.client, path, caller, key)

        assert_problem(response, 400, "invalid_idempotency_key")
    assert await owned_suppliers(session, caller.account_id) == 0


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 255, id="255-chars"),
        pytest.param("x", id="1-char"),
        pytest.param("!~{}[]<>:;'\"@#$%^&*()_+-=?/.,|\\`", id="punctuation"),
        pytest.param("0b8e3c9a-5f1d-4a4e-9d7b-2c6f1e8a9b3d", id="uuid"),
    ],
)
async def test_a_valid_key_is_accepted_and_replayed(
    api: Api, session: AsyncSession, key: str
) -> None:
    caller = await new_caller(api.client)

    first = await post(api.client, REQUIRED, caller, key)
    retry = await post(api.client, REQUIRED, caller, key)

    assert first.status_code == 201, first.text
    assert_replay_of(retry, first)
    assert await owned_suppliers(session, caller.account_id) == 1


async def test_the_optional_route_works_without_a_key(api: Api, session: AsyncSession) -> None:
    caller = await new_caller(api.client)

    first = await post(api.client, OPTIONAL, caller, None)
    second = await post(api.client, OPTIONAL, caller, None)

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert await owned_suppliers(session, caller.account_id) == 2
    assert await stored_keys(session, f"account:{caller.account_id}") == []


async def test_the_optional_route_replays_when_given_a_key(api: Api, session: AsyncSession) -> None:
    caller = await new_caller(api.client)
    key = new_key()

    first = await post(api.client, OPTIONAL, caller, key)
    retry = await post(api.client, OPTIONAL, caller, key)

    assert first.status_code == 201, first.text
    assert_replay_of(retry, first)
    assert await owned_suppliers(session, caller.account_id) == 1
    assert len(await owned_via_api(api.client, caller)) == 1


async def test_a_failed_first_request_stores_nothing_and_a_retry_runs_anew(
    api: Api, session: AsyncSession
) -> None:
    caller = await new_caller(api.client)
    key = new_key()
    api.controls.failures_left = 1

    failed = await post(api.client, FAILING, caller, key)

    assert_problem(failed, 409, "test_work_failed")
    assert await owned_suppliers(session, caller.account_id) == 0
    assert await stored_keys(session, f"account:{caller.account_id}") == []

    retry = await post(api.client, FAILING, caller, key)

    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert await owned_suppliers(session, caller.account_id) == 1
    assert_replay_of(await post(api.client, FAILING, caller, key), retry)


async def test_a_crashed_first_request_stores_nothing_and_a_retry_runs_anew(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    app = build_app(settings, sessionmaker)
    async with api_client(app, raise_app_exceptions=False) as api:
        caller = await new_caller(api.client)
        key = new_key()
        api.controls.failures_left = 1

        crashed = await post(api.client, CRASHING, caller, key)

        assert_problem(crashed, 500, "internal_error")
        assert await owned_suppliers(session, caller.account_id) == 0
        assert await stored_keys(session, f"account:{caller.account_id}") == []

        retry = await post(api.client, CRASHING, caller, key)

        assert retry.status_code == 201, retry.text
        assert "Idempotent-Replayed" not in retry.headers
        assert await owned_suppliers(session, caller.account_id) == 1


async def test_a_request_refused_by_validation_stores_nothing(
    api: Api, session: AsyncSession
) -> None:
    caller = await new_caller(api.client)
    key = new_key()

    invalid = await post(api.client, REQUIRED, caller, key, name="")
    assert_problem(invalid, 422, "validation_error")

    retry = await post(api.client, REQUIRED, caller, key, name="Valid Farm")

    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert await owned_suppliers(session, caller.account_id) == 1


async def test_an_anonymous_request_with_a_key_is_refused_before_the_key_is_used(
    api: Api, session: AsyncSession
) -> None:
    key = new_key()

    response = await api.client.post(
        REQUIRED, json={"name": "Nobody's Farm"}, headers={"Idempotency-Key": key}
    )

    assert_problem(response, 401, "unauthenticated")
    assert await stored_keys(session, "anonymous") == []


async def test_the_replay_header_is_absent_from_errors(api: Api) -> None:
    caller = await new_caller(api.client)

    response = await post(api.client, REQUIRED, caller, None)

    assert response.status_code == 400
    assert "Idempotent-Replayed" not in response.headers


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(b"abc\n", id="trailing-newline"),
        pytest.param(b"k" * 255 + b"\n", id="255-chars-and-newline"),
    ],
)
async def test_a_key_ending_in_a_newline_is_refused(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    key: bytes,
) -> None:
    async with api_client(build_app(settings, sessionmaker), raise_app_exceptions=False) as api:
        caller = await new_caller(api.client)

        response = await post(api.client, REQUIRED, caller, key)

        assert_problem(response, 400, "invalid_idempotency_key")
        assert await owned_suppliers(session, caller.account_id) == 0
