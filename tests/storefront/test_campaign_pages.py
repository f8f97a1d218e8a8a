"""A signed-up shop's campaign on the storefront: the product page and the shop's cards show the
campaign price, the regular price struck through and a countdown while it warms up, the price
and the time left while it is live (the price checkout charges), and the regular price after;
kept pages and data never show a phase past its time."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.campaigns.helpers import body, scheduled, sign_up
from tests.orders.helpers import market
from xiaopu.kit.clock import Clock


def max_age(response: httpx.Response) -> int:
    found = re.fullmatch(r"public, max-age=(\d+)", response.headers["cache-control"])
    assert found, response.headers["cache-control"]
    return int(found.group(1))


async def test_warm_up_then_live_then_over_on_the_pages(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    m = await market(client, session, price=10_000, stock=20, markup_bps=1000)
    supply = m.suppliers[0]
    product_path = f"/m/{m.slug}/p/{supply.products[0]}"
    start = test_clock.freeze(test_clock.now())
    data = body(
        m.variant,
        start,
        price=8_000,
        units=7,
        warm_up=timedelta(hours=1),
        start=timedelta(hours=4),
        length=timedelta(hours=6),
    )
    campaign = await scheduled(client, supply, data)
    assert (await sign_up(client, m.keeper, campaign["id"])).status_code == 200

    # Before its warm-up: the regular price; browsers keep the page for the usual 30 s.
    before = await client.get(product_path)
    assert before.status_code == 200
    assert "¥110.00" in before.text
    assert "限时价" not in before.text
    assert max_age(before) == 30
    assert (await client.get(product_path)).content == before.content  # kept (fast path)

    # Warming up, 2 h 14 min 10 s before the start: a kept page is not answered past its time.
    test_clock.advance(timedelta(hours=1, minutes=45, seconds=50))
    warm = await client.get(product_path)
    assert 'data-campaign="warm_up"' in warm.text
    assert "<span data-campaign-price>¥88.00</span>" in warm.text
    assert '<del class="regular" title="原价">¥110.00</del>' in warm.text
    assert '距开抢 <span class="countdown" data-countdown="8050"' in warm.text
    assert ">2 小时 14 分</span>" in warm.text
    assert "开抢前按现价 ¥110.00 购买。" in warm.text
    assert 'src="/m/_/countdown.js?v=' in warm.text
    assert max_age(warm) == 5  # no longer than the server keeps its data
    english = await client.get(product_path, headers={"accept-language": "en"})
    assert "Starts in" in english.text
    assert ">2 h 14 min</span>" in english.text
    # Buying now is at the regular price, and the checkout page says so.
    checkout = await client.get(f"/m/{m.slug}/checkout", params={"v": m.variant, "n": "1"})
    assert "¥110.00 × 1" in checkout.text

    shop_page = await client.get(f"/m/{m.slug}")
    assert "预热中" in shop_page.text
    assert "¥88.00 <del>¥110.00</del>" in shop_page.text

    # Live: the same page, now selling at the campaign price, as checkout charges it.
    test_clock.advance(timedelta(hours=2, minutes=14, seconds=10))
    live = await client.get(product_path)
    assert 'data-campaign="live"' in live.text
    assert '距结束 <span class="countdown" data-countdown="21600"' in live.text
    assert ">6 小时 0 分</span>" in live.text
    assert "限时价仅剩 7 件" in live.text
    assert '<meta property="product:price:amount" content="88.00">' in live.text
    checkout = await client.get(f"/m/{m.slug}/checkout", params={"v": m.variant, "n": "2"})
    assert "¥88.00 × 2" in checkout.text
    assert "¥176.00" in checkout.text
    assert "限时抢购" in (await client.get(f"/m/{m.slug}")).text

    # Over (the clock's job has not run): a kept live page is not answered after the end.
    await client.get(product_path)
    test_clock.advance(timedelta(hours=6))
    after = await client.get(product_path)
    assert "限时价" not in after.text
    assert "¥110.00" in after.text
    checkout = await client.get(f"/m/{m.slug}/checkout", params={"v": m.variant, "n": "1"})
    assert "¥110.00 × 1" in checkout.text
