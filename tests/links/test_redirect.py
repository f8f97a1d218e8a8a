"""GET /s/{code}: browsers are redirected with a token and counted once an hour; previews, bots
and HEAD requests count nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import person
from tests.links.helpers import product_link_code, shop_with_product
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.links import tokens
from xiaopu.models import Click, LinkDailyStats

BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.40"
)
PREVIEW = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"


async def _clicks(session: AsyncSession) -> list[Click]:
    return list((await session.scalars(select(Click).order_by(Click.created_at))).all())


async def _flush(client: httpx.AsyncClient) -> None:
    app: Any = client._transport.app  # type: ignore[attr-defined]
    await app.state.clicks.flush()


async def test_browser_gets_302_with_token_and_one_click(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    keeper = await person(client)
    _, product_id = await shop_with_product(client, session, keeper)
    link = await client.post(
        "/v1/shops/mine/links", json={"product_id": product_id, "label": "家人群"}, headers=keeper
    )
    assert link.status_code == 201, link.text
    code = link.json()["code"]
    assert len(code) >= 8

    response = await client.get(f"/s/{code}", headers={"user-agent": BROWSER})
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.netloc == urlsplit(settings.public_base_url).netloc
    token = parse_qs(location.query)["xp_at"][0]
    attribution = tokens.verify(settings.attribution_key, token)
    assert str(attribution.link_id) == link.json()["id"]
    assert "xp_vid=" in response.headers["set-cookie"]

    await _flush(client)
    (click,) = await _clicks(session)
    assert click.id == attribution.click_id
    assert click.is_repeat is False
    assert click.agent_class == "mobile"

    # The same visitor within the hour: kept as a repeat, not counted.
    cookie = response.headers["set-cookie"].split(";")[0]
    again = await client.get(f"/s/{code}", headers={"user-agent": BROWSER, "cookie": cookie})
    assert again.status_code == 302
    await _flush(client)
    clicks = await _clicks(session)
    assert [c.is_repeat for c in clicks] == [False, True]
    stats = await session.scalar(select(LinkDailyStats))
    assert stats is not None
    assert (stats.clicks, stats.unique_visitors) == (1, 1)

    listed = await client.get(f"/v1/shops/mine/links/{link.json()['id']}/stats", headers=keeper)
    assert listed.status_code == 200
    assert [(d["clicks"], d["unique_visitors"]) for d in listed.json()["days"]] == [(1, 1)]


@pytest.mark.parametrize(
    "agent", [PREVIEW, "Twitterbot/1.0", "WhatsApp/2.23.20.0", "Googlebot/2.1"]
)
async def test_previews_and_bots_get_the_open_graph_page_and_no_click(
    client: httpx.AsyncClient, session: AsyncSession, agent: str
) -> None:
    keeper = await person(client)
    _, product_id = await shop_with_product(client, session, keeper)
    link = await client.post(
        "/v1/shops/mine/links", json={"product_id": product_id}, headers=keeper
    )
    code = link.json()["code"]
    response = await client.get(f"/s/{code}", headers={"user-agent": agent})
    assert response.status_code == 200
    page = response.text
    assert '<meta property="og:title" content="云南普洱茶饼' in page
    assert 'property="og:image" content="https://img.example.com/puer.jpg"' in page
    assert "¥140.80 · " in page  # 128.00 plus the shop's 10% markup
    assert '<meta property="product:price:amount" content="140.80">' in page
    assert f'<link rel="canonical" href="http://127.0.0.1:8000/s/{code}">' in page
    await _flush(client)
    assert await session.scalar(select(func.count()).select_from(Click)) == 0


@pytest.mark.parametrize(
    ("price_minor", "currency", "shown", "amount"),
    [(1000, "JPY", "1100 JPY", "1100"), (12345, "KWD", "13.580 KWD", "13.580")],
)
async def test_the_preview_shows_the_price_in_the_currencys_own_minor_units(
    client: httpx.AsyncClient,
    session: AsyncSession,
    price_minor: int,
    currency: str,
    shown: str,
    amount: str,
) -> None:
    """Yen have no minor unit and dinars have three: neither is a hundredth."""
    keeper = await person(client)
    _, product_id = await shop_with_product(
        client, session, keeper, price_minor=price_minor, currency=currency
    )
    link = await client.post(
        "/v1/shops/mine/links", json={"product_id": product_id}, headers=keeper
    )
    response = await client.get(f"/s/{link.json()['code']}", headers={"user-agent": PREVIEW})
    assert response.status_code == 200
    page = response.text
    assert f'<meta property="og:description" content="{shown} · ' in page
    assert f'<meta property="product:price:amount" content="{amount}">' in page
    assert f'<meta property="product:price:currency" content="{currency}">' in page


async def test_head_counts_nothing(client: httpx.AsyncClient, session: AsyncSession) -> None:
    keeper = await person(client)
    _, product_id = await shop_with_product(client, session, keeper)
    code = (
        await client.post("/v1/shops/mine/links", json={"product_id": product_id}, headers=keeper)
    ).json()["code"]
    response = await client.head(f"/s/{code}", headers={"user-agent": BROWSER})
    assert response.status_code == 302
    await _flush(client)
    assert await session.scalar(select(func.count()).select_from(Click)) == 0


async def test_unknown_and_disabled_codes_get_a_friendly_404(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    keeper = await person(client)
    _, product_id = await shop_with_product(client, session, keeper)
    created = (
        await client.post("/v1/shops/mine/links", json={"product_id": product_id}, headers=keeper)
    ).json()
    unknown = await client.get("/s/zzzzzzzzzz", headers={"user-agent": BROWSER})
    assert unknown.status_code == 404
    assert "链接已失效" in unknown.text
    disabled = await client.post(f"/v1/shops/mine/links/{created['id']}/disable", headers=keeper)
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    gone = await client.get(f"/s/{created['code']}", headers={"user-agent": BROWSER})
    assert gone.status_code == 404


async def test_a_visitor_counts_again_after_the_hour_and_referrer_hosts_are_kept(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    code = await product_link_code(client, session)
    test_clock.freeze()
    # The visitor cookie is found among others, and a look-alike name is not taken for it.
    cookie = "other=1; not_xp_vid=zzzzzzzzzzzzzzzzzzzz; xp_vid=abcdefghijklmnop1234; last=2"
    headers = {"user-agent": BROWSER, "cookie": cookie, "referer": "https://Chat.Example.com/g/1"}
    first = await client.get(f"/s/{code}", headers=headers)
    assert first.status_code == 302
    assert "set-cookie" not in first.headers  # the visitor already has one
    test_clock.advance(timedelta(minutes=59))
    assert (await client.get(f"/s/{code}", headers=headers)).status_code == 302
    test_clock.advance(timedelta(minutes=2))
    assert (await client.get(f"/s/{code}", headers=headers)).status_code == 302
    await _flush(client)
    clicks = await _clicks(session)
    assert [c.is_repeat for c in clicks] == [False, True, False]
    assert {c.visitor_id for c in clicks} == {"abcdefghijklmnop1234"}
    assert {c.referrer_host for c in clicks} == {"chat.example.com"}
    assert clicks[0].created_at == test_clock.now() - timedelta(minutes=61)


@pytest.mark.parametrize(
    "cookie",
    ["xp_vid=short", "xp_vid=has-a-dash-in-it-0123", "xp_vid=", "axp_vid=abcdefghijklmnop1"],
)
async def test_a_malformed_visitor_cookie_is_replaced(
    client: httpx.AsyncClient, session: AsyncSession, cookie: str
) -> None:
    code = await product_link_code(client, session)
    response = await client.get(f"/s/{code}", headers={"user-agent": BROWSER, "cookie": cookie})
    assert response.status_code == 302
    visitor = response.headers["set-cookie"].split(";")[0].removeprefix("xp_vid=")
    # The keyed hash of IP and user agent stands in.
    assert visitor.startswith("h")
    assert len(visitor) == 43
    await _flush(client)
    (click,) = await _clicks(session)
    assert click.visitor_id == visitor
