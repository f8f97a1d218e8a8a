"""A campaign in a share link's Open Graph preview: the campaign price and a countdown to the
start while warming up, the time left while live, the regular price otherwise or for a shop not
signed up. Worked out when the preview renders, from the cached target's times."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.campaigns.helpers import body, scheduled, sign_up
from tests.catalogue.helpers import add_to_shop, new_actor, open_shop
from tests.orders.helpers import market
from xiaopu.kit.clock import Clock

PREVIEW = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"


def meta(page: str, name: str) -> str:
    found = re.search(rf'<meta property="{re.escape(name)}" content="([^"]*)">', page)
    assert found, f"no {name} in {page}"
    return found.group(1)


async def preview(client: httpx.AsyncClient, code: str, lang: str = "zh-CN") -> str:
    response = await client.get(
        f"/s/{code}", headers={"user-agent": PREVIEW, "accept-language": lang}
    )
    assert response.status_code == 200, response.text
    return response.text


async def link_code(client: httpx.AsyncClient, headers: dict[str, str], product_id: str) -> str:
    link = await client.post(
        "/v1/shops/mine/links", json={"product_id": product_id}, headers=headers
    )
    assert link.status_code == 201, link.text
    code: str = link.json()["code"]
    return code


async def test_the_preview_shows_the_campaign_price_and_the_countdown(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    # ¥100.00 at the supplier, ¥110.00 in the shop (10% markup); ¥80.00 in the campaign, so
    # ¥88.00 in the shop, as checkout charges it.
    m = await market(client, session, price=10_000, stock=20, markup_bps=1000)
    supply = m.suppliers[0]
    product_id = supply.products[0]
    start = test_clock.freeze(test_clock.now())
    data = body(
        m.variant,
        start,
        price=8_000,
        warm_up=timedelta(hours=1),
        start=timedelta(hours=4),
        length=timedelta(hours=6),
    )
    campaign = await scheduled(client, supply, data)
    joined = await sign_up(client, m.keeper, campaign["id"])
    assert joined.status_code == 200, joined.text
    code = await link_code(client, m.keeper.headers, product_id)
    # Another shop carrying the product, not signed up.
    other = await new_actor(client)
    await open_shop(client, other.headers)
    assert (await add_to_shop(client, other.headers, product_id, markup_bps=1000)).is_success
    other_code = await link_code(client, other.headers, product_id)

    # Scheduled, not warming up yet: the regular price.
    page = await preview(client, code)
    assert meta(page, "og:description").startswith("¥110.00 · ")
    assert "限时价" not in page

    # Warming up (the target stays cached: its times decide), 2 h 15 min before the start.
    test_clock.advance(timedelta(hours=1, minutes=45))
    page = await preview(client, code)
    assert re.fullmatch(r"【限时价 ¥88\.00】Product \w+", meta(page, "og:title"))
    assert meta(page, "og:description").startswith("限时价 ¥88.00 · 2 小时 15 分后开抢 · ")
    assert meta(page, "twitter:title") == meta(page, "og:title")
    # Until the start it sells at the regular price.
    assert meta(page, "product:price:amount") == "110.00"
    english = await preview(client, code, "en-US,en;q=0.9")
    assert meta(english, "og:description").startswith(
        "Campaign price ¥88.00 · starts in 2 h 15 min · "
    )
    assert '<html lang="en">' in english
    other_page = await preview(client, other_code)
    assert meta(other_page, "og:description").startswith("¥110.00 · ")

    # Live, 5 h 59 min 30 s before the end: the price it sells at and the time left.
    test_clock.advance(timedelta(hours=2, minutes=15, seconds=30))
    page = await preview(client, code)
    assert meta(page, "og:description").startswith("限时价 ¥88.00 · 距结束 5 小时 59 分 · ")
    assert meta(page, "product:price:amount") == "88.00"
    english = await preview(client, code, "en")
    assert meta(english, "og:description").startswith(
        "Campaign price ¥88.00 · ends in 5 h 59 min · "
    )
    assert "限时价" not in await preview(client, other_code)

    # Its end (the clock's job has not run yet): the regular price again.
    test_clock.advance(timedelta(hours=6))
    page = await preview(client, code)
    assert meta(page, "og:description").startswith("¥110.00 · ")
    assert meta(page, "product:price:amount") == "110.00"
