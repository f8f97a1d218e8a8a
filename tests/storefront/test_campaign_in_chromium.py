"""A campaign share link in a real headless Chromium: during warm-up the landing page shows the
campaign price, the regular price struck through and a countdown that ticks; when the countdown
reaches the start the page reloads itself and the same page sells at the campaign price, through
checkout to the placed order."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
from playwright.async_api import Page
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from tests.campaigns.helpers import body
from tests.factories import person, supplier
from tests.orders.helpers import key
from tests.storefront.test_storefront_in_chromium import (  # noqa: F401 - fixtures
    PHONE,
    Served,
    _fill_address,
    api,
    browser_page,
    pytestmark,
    served,
)
from xiaopu.db import async_url
from xiaopu.kit.clock import Clock
from xiaopu.models import Supplier, SupplierStatus

SCREENSHOT = "/tmp/campaign_warmup.png"  # noqa: S108 - a file to look at, as asked


@dataclass
class CampaignShop:
    slug: str
    product_id: str
    link_code: str


async def _campaign_shop(client: httpx.AsyncClient, where: Served, clock: Clock) -> CampaignShop:
    """A tea shop (10% markup) carrying a product of two variants, one of them in a campaign
    the shop signed up to: warming up now, starting in 2 h 14 min 30 s, selling for 6 h."""
    keeper = await person(client)
    supplier_id, owner = await supplier(client)
    engine = create_async_engine(async_url(where.database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(Supplier)
                .where(Supplier.id == uuid.UUID(supplier_id))
                .values(
                    name="云南茶园 Yunnan Tea Co.",
                    status=SupplierStatus.active,
                    shipping_fee_minor=800,
                )
            )
    finally:
        await engine.dispose()
    ref = uuid.uuid4().hex[:10]
    created = await client.post(
        f"/v1/suppliers/{supplier_id}/products",
        json={
            "ref": ref,
            "title": "云南普洱茶饼 357g",
            "description": "临沧古树生普，2019 年压制。\nAged raw pu-erh from Lincang.",
            "category_id": "food.tea",
            "commission_bps": 1500,
            "markup_ceiling_bps": 2000,
            "status": "active",
            "image_urls": [f"{where.base}/m/_/demo/puer.svg"],
            "variants": [
                {
                    "sku": f"{ref}-19",
                    "options": {"year": "2019"},
                    "price_minor": 12800,
                    "currency": "CNY",
                    "stock": 20,
                },
                {
                    "sku": f"{ref}-15",
                    "options": {"year": "2015"},
                    "price_minor": 26800,
                    "currency": "CNY",
                    "stock": 3,
                },
            ],
        },
        headers=owner,
    )
    assert created.status_code == 201, created.text
    product = created.json()
    (variant_2019,) = [v["id"] for v in product["variants"] if v["sku"].endswith("-19")]
    assert (await client.post("/v1/shops", json={"name": "小林的茶铺"}, headers=keeper)).is_success
    added = await client.post(
        "/v1/shops/mine/products",
        json={"product_id": product["id"], "markup_bps": 1000, "blurb": "掌柜每天早上一壶。"},
        headers=keeper,
    )
    assert added.status_code == 201, added.text
    slug = (await client.get("/v1/shops/mine", headers=keeper)).json()["slug"]
    # ¥128.00 → ¥98.00 at the supplier: ¥140.80 → ¥107.80 in the shop.
    now = clock.now()
    data = body(
        variant_2019,
        now,
        price=9_800,
        units=30 // 2,
        warm_up=timedelta(0),
        start=timedelta(hours=2, minutes=14, seconds=30),
        length=timedelta(hours=6),
    )
    made = await client.post(
        f"/v1/suppliers/{supplier_id}/campaigns", json=data, headers={**owner, **key()}
    )
    assert made.status_code == 201, made.text
    campaign_id = made.json()["id"]
    scheduled = await client.post(
        f"/v1/suppliers/{supplier_id}/campaigns/{campaign_id}/schedule",
        headers={**owner, **key()},
    )
    assert scheduled.status_code == 200, scheduled.text
    joined = await client.post(
        f"/v1/shops/mine/campaigns/{campaign_id}/signup", headers={**keeper, **key()}
    )
    assert joined.status_code == 200, joined.text
    link = await client.post(
        "/v1/shops/mine/links",
        json={"product_id": product["id"], "label": "家人群"},
        headers=keeper,
    )
    assert link.status_code == 201, link.text
    return CampaignShop(slug, product["id"], link.json()["code"])


async def test_a_campaign_link_warms_up_then_sells_at_the_campaign_price(
    served: Served,  # noqa: F811 - the fixtures imported above
    api: httpx.AsyncClient,  # noqa: F811
    browser_page: Page,  # noqa: F811
    test_clock: Clock,
) -> None:
    shop = await _campaign_shop(api, served, test_clock)
    page = browser_page
    await page.goto(f"{served.base}/s/{shop.link_code}")
    assert page.url == f"{served.base}/m/{shop.slug}/p/{shop.product_id}"
    await page.wait_for_load_state("networkidle")

    # Warming up: the campaign price, the regular one struck through, a countdown.
    campaign = page.locator("[data-campaign=warm_up]")
    await campaign.wait_for()
    assert await page.locator("[data-campaign-price]").inner_text() == "¥107.80"
    regular = page.locator("del.regular")
    assert await regular.inner_text() == "¥140.80"
    decoration = await regular.evaluate("e => getComputedStyle(e).textDecorationLine")
    assert decoration == "line-through"
    countdown = page.locator(".countdown")
    assert re.fullmatch(r"2 小时 1[34] 分", await countdown.inner_text())
    assert "距开抢" in await page.locator(".countdown-line").inner_text()
    assert "开抢前按现价 ¥140.80 购买" in await campaign.inner_text()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways on a phone"
    await page.screenshot(path=SCREENSHOT, full_page=True)

    # Five seconds before the start: the countdown ticks in seconds, and at zero the page
    # reloads itself, live (the server's clock moves on in real time from here).
    starts_in = await countdown.get_attribute("data-countdown")
    assert starts_in is not None
    test_clock.advance(timedelta(seconds=int(starts_in) - 5))
    # A query string: not the page the fast path kept seconds ago (its countdown counts from
    # when it was rendered, which is right while clocks run but not after a jump of two hours).
    await page.goto(f"{served.base}/m/{shop.slug}/p/{shop.product_id}?at=start")
    await page.locator("[data-campaign=warm_up]").wait_for()
    first = await countdown.inner_text()
    assert re.fullmatch(r"[3-5] 秒", first), first
    await page.wait_for_function(
        "t => document.querySelector('.countdown').textContent !== t", arg=first, timeout=3_000
    )
    await page.locator("[data-campaign=live]").wait_for(timeout=15_000)
    assert "距结束" in await page.locator(".countdown-line").inner_text()
    assert re.fullmatch(r"(6 小时 0 分|5 小时 59 分)", await countdown.inner_text())
    assert await page.locator("[data-campaign-price]").inner_text() == "¥107.80"
    assert "限时价仅剩 15 件" in await page.locator("[data-campaign=live]").inner_text()
    await page.screenshot(path="/tmp/campaign_live.png", full_page=True)  # noqa: S108

    # The same page sells at the campaign price: buy now, check out, the order.
    await page.locator("label.variant", has_text="2019").click()
    await page.click("button[type=submit]")
    await page.wait_for_url("**/checkout?**")
    summary = await page.locator(".summary").inner_text()
    assert "¥107.80 × 1" in summary
    assert "¥115.80" in summary  # with the supplier's ¥8.00 shipping
    await _fill_address(page, "13800138000")
    await page.click("button.place")
    await page.wait_for_url("**/m/o/**")
    assert await page.get_attribute("[data-order-status]", "data-order-status") == (
        "pending_payment"
    )
    order = await page.locator("main").inner_text()
    assert "¥107.80 × 1" in order
    assert "¥115.80" in order
