"""Checkout's fast path answers exactly as the declared FastAPI endpoint does, refusals included."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.catalogue.helpers import new_actor
from tests.conftest import make_settings
from tests.orders.helpers import ADDRESS, market
from xiaopu.app import create_app
from xiaopu.config import Settings
from xiaopu.orders import checkout_route

# Fields that differ between two orders placed alike: ids, times, tokens and links.
VARYING = {"id", "created_at", "expires_at", "access_token", "pay_url", "provider_ref"}


@pytest.fixture
async def declared(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The same app with checkout served by its FastAPI endpoint."""
    slow = make_settings(str(settings.database_url), checkout_fast_path=False)
    app = create_app(slow, sessionmaker=sessionmaker)
    assert app.checkout is None
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _alike(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<varies>" if k in VARYING else _alike(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_alike(v) for v in value]
    return value


async def _both(
    fast: httpx.AsyncClient,
    declared: httpx.AsyncClient,
    *,
    content: bytes,
    headers: dict[str, str],
    key: str | None = "fresh",
) -> httpx.Response:
    answers = []
    for client in (fast, declared):
        sent = dict(headers)
        if key is not None:
            # Each app gets its own key, unless the case is about one key used twice.
            sent["Idempotency-Key"] = str(uuid.uuid4()) if key == "fresh" else key
        answers.append(await client.post(checkout_route.PATH, content=content, headers=sent))
    mine, theirs = answers
    assert mine.status_code == theirs.status_code, (mine.text, theirs.text)
    for header in ("content-type", "idempotent-replayed", "retry-after"):
        assert mine.headers.get(header) == theirs.headers.get(header), header
    assert "x-request-id" in mine.headers
    assert _alike(mine.json()) == _alike(theirs.json())
    return mine


async def test_the_fast_path_answers_as_the_declared_endpoint(
    client: httpx.AsyncClient, declared: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session, stock=100)
    buyer = await new_actor(client)
    order = {"shop_slug": m.slug, "items": [{"variant_id": m.variant, "quantity": 2}]}
    good = json.dumps({**order, "address": ADDRESS}).encode()
    as_json = {"Content-Type": "application/json"}
    bad_quantity = json.dumps(
        {**order, "items": [{"variant_id": m.variant, "quantity": 0}], "address": ADDRESS}
    ).encode()
    elsewhere = json.dumps(
        {**order, "items": [{"variant_id": str(uuid.uuid4()), "quantity": 1}], "address": ADDRESS}
    ).encode()

    placed = await _both(client, declared, content=good, headers=as_json)
    assert placed.status_code == 201
    assert placed.json()["access_token"]
    signed_in = await _both(client, declared, content=good, headers={**as_json, **buyer.headers})
    assert signed_in.status_code == 201
    assert signed_in.json()["access_token"] is None

    cases: list[tuple[bytes, dict[str, str], str | None, int, str]] = [
        (good, as_json, None, 400, "idempotency_key_missing"),
        (good, as_json, "not a valid key", 400, "invalid_idempotency_key"),
        (b'{"shop_slug": ', as_json, "fresh", 400, "invalid_json"),
        # A malformed body is refused before the caller is checked; an invalid one after.
        (b"{", {**as_json, "Authorization": "Bearer nope"}, "fresh", 400, "invalid_json"),
        (bad_quantity, {**as_json, "Authorization": "Bearer nope"}, "fresh", 401, "invalid_token"),
        (bad_quantity, as_json, None, 400, "idempotency_key_missing"),
        (bad_quantity, as_json, "fresh", 422, "validation_error"),
        (b"", as_json, "fresh", 422, "validation_error"),
        (b"[]", as_json, "fresh", 422, "validation_error"),
        (
            b'{"shop_slug": 1, "items": "x", "address": {}}',
            as_json,
            "fresh",
            422,
            "validation_error",
        ),
        (b'{"shop_slug": "\xff"}', as_json, "fresh", 400, "bad_request"),
        (good, {"Content-Type": "text/plain"}, "fresh", 422, "validation_error"),
        (good, {}, "fresh", 422, "validation_error"),  # no content type: not taken as JSON
        (b'{"note": ' + b"[" * 5000 + b"]" * 5000 + b"}", as_json, "fresh", 400, "bad_request"),
        (good, {**as_json, "Authorization": "Bearer xpk_abc"}, "fresh", 401, "invalid_token"),
        (elsewhere, as_json, "fresh", 422, "not_in_shop"),
        (b" " * 2_000_000, as_json, "fresh", 413, "payload_too_large"),
    ]
    for content, headers, case_key, status, code in cases:
        answer = await _both(client, declared, content=content, headers=headers, key=case_key)
        assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text

    # A key first used on the declared endpoint: the same body replays on both paths, a
    # different body is refused on both.
    first = await declared.post(
        checkout_route.PATH, content=good, headers={**as_json, "Idempotency-Key": "used-once"}
    )
    assert first.status_code == 201
    replayed = await _both(client, declared, content=good, headers=as_json, key="used-once")
    assert replayed.headers["idempotent-replayed"] == "true"
    changed = json.dumps({**order, "address": {**ADDRESS, "line1": "别处"}}).encode()
    refused = await _both(client, declared, content=changed, headers=as_json, key="used-once")
    assert refused.json()["code"] == "idempotency_key_reused"


async def test_an_unexpected_error_is_answered_500_and_raised_to_the_server_on_both_paths(
    client: httpx.AsyncClient,
    declared: httpx.AsyncClient,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = await market(client, session, stock=10)

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("xiaopu.orders.service.checkout", broken)
    body = {"shop_slug": m.slug, "items": [{"variant_id": m.variant, "quantity": 1}]}
    for target in (client, declared):
        with pytest.raises(RuntimeError, match="boom"):
            await target.post(
                checkout_route.PATH,
                json={**body, "address": ADDRESS},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
