"""Idempotency-Key under real concurrency: one effect per key, 409 while the first is in flight."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from tests.auth.helpers import assert_problem
from tests.idempotency.helpers import (
    GATED,
    OPTIONAL,
    SLOW,
    Api,
    Caller,
    assert_replay_of,
    new_caller,
    new_key,
    owned_via_api,
    post,
)

pytestmark = pytest.mark.concurrent

ATTEMPTS = 50


def _classify(responses: list[httpx.Response]) -> tuple[httpx.Response, Counter[str]]:
    """The one answer that did the work, and a tally of the rest; fails on anything else."""
    originals = [
        r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    ]
    assert len(originals) == 1, [(r.status_code, r.text) for r in responses]
    (original,) = originals
    tally: Counter[str] = Counter()
    for response in responses:
        if response is original:
            continue
        if response.status_code == 409:
            assert_problem(response, 409, "idempotency_key_in_use")
            assert response.headers["Retry-After"] == "1"
            assert "Idempotent-Replayed" not in response.headers
            tally["in_use"] += 1
        else:
            assert_replay_of(response, original)
            tally["replayed"] += 1
    assert sum(tally.values()) == len(responses) - 1
    return original, tally


async def _storm(
    client: httpx.AsyncClient, path: str, caller: Caller, key: str
) -> list[httpx.Response]:
    return list(await asyncio.gather(*(post(client, path, caller, key) for _ in range(ATTEMPTS))))


async def test_concurrent_retries_of_the_optional_route_have_one_effect(
    concurrent_client: httpx.AsyncClient,
) -> None:
    caller = await new_caller(concurrent_client)
    key = new_key()

    original, _ = _classify(await _storm(concurrent_client, OPTIONAL, caller, key))

    owned = await owned_via_api(concurrent_client, caller)
    assert [item["supplier"]["id"] for item in owned] == [original.json()["id"]]
    assert_replay_of(await post(concurrent_client, OPTIONAL, caller, key), original)


async def test_concurrent_retries_of_slow_work_have_one_effect(concurrent_api: Api) -> None:
    client = concurrent_api.client
    caller = await new_caller(client)
    key = new_key()

    original, tally = _classify(await _storm(client, SLOW, caller, key))

    assert concurrent_api.controls.calls["slow"] == 1
    # The work sleeps 50 ms while holding the key, so some retries arrive while it runs.
    assert tally["in_use"] >= 1, tally
    owned = await owned_via_api(client, caller)
    assert [item["supplier"]["id"] for item in owned] == [original.json()["id"]]
    assert_replay_of(await post(client, SLOW, caller, key), original)


async def test_staggered_retries_get_409_while_it_runs_and_the_replay_after(
    concurrent_api: Api,
) -> None:
    client = concurrent_api.client
    concurrent_api.controls.sleep_seconds = 0.2
    caller = await new_caller(client)
    key = new_key()

    async def later(delay: float) -> httpx.Response:
        await asyncio.sleep(delay)
        return await post(client, SLOW, caller, key)

    # Retries spread over 1.2 s: the early ones meet the 200 ms work in flight, the late ones
    # its stored answer.
    responses = await asyncio.gather(*(later(i * 0.03) for i in range(40)))

    original, tally = _classify(list(responses))
    assert tally["in_use"] >= 1, tally
    assert tally["replayed"] >= 1, tally
    assert concurrent_api.controls.calls["slow"] == 1
    owned = await owned_via_api(client, caller)
    assert [item["supplier"]["id"] for item in owned] == [original.json()["id"]]


async def test_concurrent_requests_with_distinct_keys_each_have_their_effect(
    concurrent_api: Api,
) -> None:
    client = concurrent_api.client
    caller = await new_caller(client)

    responses = await asyncio.gather(
        *(post(client, SLOW, caller, new_key(), name=f"Farm {i}") for i in range(20))
    )

    assert [r.status_code for r in responses] == [201] * 20
    assert not any("Idempotent-Replayed" in r.headers for r in responses)
    assert len(await owned_via_api(client, caller)) == 20
    assert concurrent_api.controls.calls["slow"] == 20


async def test_concurrent_callers_with_one_key_each_have_one_effect(concurrent_api: Api) -> None:
    client = concurrent_api.client
    alice = await new_caller(client)
    bob = await new_caller(client)
    key = new_key()

    for_alice, for_bob = await asyncio.gather(
        _storm(client, SLOW, alice, key), _storm(client, SLOW, bob, key)
    )

    alices, _ = _classify(for_alice)
    bobs, _ = _classify(for_bob)
    assert alices.json()["id"] != bobs.json()["id"]
    assert [i["supplier"]["id"] for i in await owned_via_api(client, alice)] == [
        alices.json()["id"]
    ]
    assert [i["supplier"]["id"] for i in await owned_via_api(client, bob)] == [bobs.json()["id"]]
    assert concurrent_api.controls.calls["slow"] == 2


async def test_a_retry_while_the_first_runs_gets_409_at_once(concurrent_api: Api) -> None:
    client = concurrent_api.client
    controls = concurrent_api.controls
    caller = await new_caller(client)
    key = new_key()
    first = asyncio.create_task(post(client, GATED, caller, key))
    try:
        await asyncio.wait_for(controls.entered.wait(), timeout=10)

        started = time.monotonic()
        retry = await asyncio.wait_for(post(client, GATED, caller, key), timeout=5)
        elapsed = time.monotonic() - started

        assert_problem(retry, 409, "idempotency_key_in_use")
        assert retry.headers["Retry-After"] == "1"
        assert elapsed < 1.0, elapsed
        assert not first.done()
    finally:
        controls.gate.set()
    original = await asyncio.wait_for(first, timeout=10)

    assert original.status_code == 201, original.text
    assert "Idempotent-Replayed" not in original.headers
    assert controls.calls["gated"] == 1
    assert_replay_of(await post(client, GATED, caller, key), original)
    assert len(await owned_via_api(client, caller)) == 1


async def test_another_caller_is_not_held_up_by_a_key_in_flight(concurrent_api: Api) -> None:
    client = concurrent_api.client
    controls = concurrent_api.controls
    alice = await new_caller(client)
    bob = await new_caller(client)
    key = new_key()
    for_alice = asyncio.create_task(post(client, GATED, alice, key))
    try:
        await asyncio.wait_for(controls.entered.wait(), timeout=10)
        controls.entered.clear()
        for_bob = asyncio.create_task(post(client, GATED, bob, key))
        # Bob's work starts although Alice's request with the same key is still running.
        await asyncio.wait_for(controls.entered.wait(), timeout=10)
        assert not for_alice.done()
        assert controls.calls["gated"] == 2
    finally:
        controls.gate.set()
    alices, bobs = await asyncio.wait_for(asyncio.gather(for_alice, for_bob), timeout=10)

    assert alices.status_code == bobs.status_code == 201
    assert alices.json()["id"] != bobs.json()["id"]
    assert len(await owned_via_api(client, alice)) == 1
    assert len(await owned_via_api(client, bob)) == 1
