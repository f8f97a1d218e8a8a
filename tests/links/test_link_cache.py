"""The share-link cache: a lapsed entry answers while one load refreshes it, concurrent misses
share one load, and an invalidation wins over a load that was already under way."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from xiaopu.config import Settings
from xiaopu.links import redirect
from xiaopu.links.clicks import ClickRecorder
from xiaopu.links.redirect import LinkCache, ShareLinks
from xiaopu.links.repository import LinkTarget


class _Loader:
    """Stands in for the database: counts loads, and can hold them until released."""

    def __init__(self) -> None:
        self.loads = 0
        self.release = asyncio.Event()
        self.release.set()
        self.disabled = False

    async def target(self, _session: Any, code: str) -> LinkTarget:
        self.loads += 1
        await self.release.wait()
        return LinkTarget(
            link_id=uuid.uuid4(),
            shop_id=uuid.uuid4(),
            product_id=None,
            disabled=self.disabled,
            shop_name="小铺",
            shop_slug="xiao-pu",
            title=code,
            image_url=None,
        )


@contextlib.asynccontextmanager
async def _no_session() -> AsyncIterator[None]:
    yield None


@pytest.fixture
def loader(monkeypatch: pytest.MonkeyPatch) -> _Loader:
    fake = _Loader()
    monkeypatch.setattr(redirect.repository, "target", fake.target)
    return fake


def _lapse(cache: LinkCache, code: str, seconds_ago: float) -> None:
    _, target = cache._entries[code]
    cache._entries[code] = (redirect.time.monotonic() - seconds_ago, target)


async def test_concurrent_misses_share_one_load(loader: _Loader, settings: Settings) -> None:
    cache = LinkCache(_no_session, settings)  # type: ignore[arg-type]
    loader.release.clear()
    waiting = [asyncio.create_task(cache.get("abcdefgh12")) for _ in range(50)]
    await asyncio.sleep(0)
    loader.release.set()
    targets = await asyncio.gather(*waiting)
    assert loader.loads == 1
    assert {id(t) for t in targets} == {id(targets[0])}


async def test_a_lapsed_entry_answers_while_one_load_refreshes_it(
    loader: _Loader, settings: Settings
) -> None:
    cache = LinkCache(_no_session, settings)  # type: ignore[arg-type]
    first = await cache.get("abcdefgh12")
    _lapse(cache, "abcdefgh12", 1)
    loader.release.clear()
    for _ in range(20):  # the fast path, with no await: the lapsed entry, one refresh started
        entry = cache.fresh("abcdefgh12")
        assert entry is not None
        assert entry[1] is first
    loader.release.set()
    await asyncio.sleep(0.01)
    assert loader.loads == 2
    refreshed = cache.fresh("abcdefgh12")
    assert refreshed is not None
    assert refreshed[1] is not first


async def test_past_the_grace_period_a_lapsed_entry_is_not_used(
    loader: _Loader, settings: Settings
) -> None:
    cache = LinkCache(_no_session, settings)  # type: ignore[arg-type]
    await cache.get("abcdefgh12")
    _lapse(cache, "abcdefgh12", redirect.STALE_GRACE_SECONDS + 1)
    assert cache.fresh("abcdefgh12") is None
    assert (await cache.get("abcdefgh12")) is not None


async def test_an_invalidation_wins_over_a_load_under_way(
    loader: _Loader, settings: Settings
) -> None:
    cache = LinkCache(_no_session, settings)  # type: ignore[arg-type]
    loader.release.clear()
    stale_read = asyncio.create_task(cache.get("abcdefgh12"))
    await asyncio.sleep(0)
    cache.invalidate("abcdefgh12")  # e.g. the link was disabled and committed meanwhile
    loader.release.set()
    await stale_read
    assert cache.fresh("abcdefgh12") is None  # the old read was not cached
    loader.disabled = True
    reloaded = await cache.get("abcdefgh12")
    assert reloaded is not None
    assert reloaded.disabled is True


async def test_a_failed_refresh_keeps_the_lapsed_entry_answering(
    loader: _Loader, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = LinkCache(_no_session, settings)  # type: ignore[arg-type]
    first = await cache.get("abcdefgh12")

    async def database_down(_session: Any, _code: str) -> LinkTarget:
        raise ConnectionError("database down")

    monkeypatch.setattr(redirect.repository, "target", database_down)
    _lapse(cache, "abcdefgh12", 1)
    entry = cache.fresh("abcdefgh12")  # starts the refresh, which fails
    assert entry is not None
    await asyncio.sleep(0.01)
    again = cache.fresh("abcdefgh12")  # still the old target, not due again for a while
    assert again is not None
    assert again[1] is first
    assert again[0] > redirect.time.monotonic()


async def test_lookups_failing_in_an_outage_answer_503_and_log_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def database_down(_session: Any, _code: str) -> LinkTarget:
        raise ConnectionError("database down")

    monkeypatch.setattr(redirect.repository, "target", database_down)
    cache = LinkCache(_no_session, settings)  # type: ignore[arg-type]
    links = ShareLinks(settings, cache, ClickRecorder(_no_session, max_buffer=10))  # type: ignore[arg-type]
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    with capture_logs() as logs:
        for i in range(200):
            scope = {"type": "http", "method": "GET", "path": f"/s/code{i:06d}", "headers": []}
            await links.handle(scope, send)  # type: ignore[arg-type]
    assert statuses == [503] * 200
    failures = [entry for entry in logs if entry["event"] == "share_link_lookup_failed"]
    assert len(failures) == 1  # not one traceback per click
    assert failures[0]["failures"] == 1
