"""The whole buyer's path in a real headless Chromium at a phone's size, against the app served
by uvicorn on a database of its own: share link → product page → cart → checkout (a wrong phone,
then a right one) → sandbox payment → the paid order, attributed to the link."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import make_settings
from tests.factories import person, supplier
from xiaopu.app import create_app
from xiaopu.db import async_url
from xiaopu.models import Supplier, SupplierStatus

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or async_playwright is None,
    reason="needs Debian's chromium (make system-deps) and the playwright package (dev extra)",
)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE = {"width": 375, "height": 812}
# Screenshots of each step, to look at (the README's comes from here).
SHOTS = Path(tempfile.gettempdir())
# A person's phone browser: Playwright's own "HeadlessChrome" is, rightly, a bot to the redirect.
MOBILE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str
    database_url: str


@pytest.fixture
def served(fresh_db_url: str) -> Iterator[Served]:
    """The app under uvicorn on a port of its own, in a thread with its own event loop."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(fresh_db_url, public_base_url=base)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(base, fresh_db_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Demo:
    slug: str
    keeper: dict[str, str]
    product_id: str
    link_code: str
    link_id: str


async def _demo(api: httpx.AsyncClient, served: Served) -> Demo:
    """A shopkeeper's shop with a product (two variants, shipping charged) and a share link."""
    keeper = await person(api)
    supplier_id, owner = await supplier(api)
    engine = create_async_engine(async_url(served.database_url))
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
    created = await api.post(
        f"/v1/suppliers/{supplier_id}/products",
        json={
            "ref": ref,
            "title": "云南普洱茶饼 357g",
            "description": "临沧古树生普，2019 年压制。\nAged raw pu-erh from Lincang.",
            "category_id": "food.tea",
            "commission_bps": 1500,
            "markup_ceiling_bps": 2000,
            "status": "active",
            "image_urls": [f"{served.base}/m/_/demo/puer.svg"],
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
    product_id = created.json()["id"]
    assert (await api.post("/v1/shops", json={"name": "小林的茶铺"}, headers=keeper)).is_success
    added = await api.post(
        "/v1/shops/mine/products",
        json={"product_id": product_id, "markup_bps": 1000, "blurb": "掌柜每天早上一壶。"},
        headers=keeper,
    )
    assert added.status_code == 201, added.text
    slug = (await api.get("/v1/shops/mine", headers=keeper)).json()["slug"]
    link = await api.post(
        "/v1/shops/mine/links", json={"product_id": product_id, "label": "家人群"}, headers=keeper
    )
    assert link.status_code == 201, link.text
    return Demo(slug, keeper, product_id, link.json()["code"], link.json()["id"])


@pytest.fixture
async def api(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
        yield client


@pytest.fixture
async def browser_page() -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = await browser.new_context(
            viewport=PHONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="zh-CN",
            user_agent=MOBILE_UA,
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield page
        finally:
            await browser.close()
        # No page broke the CSP or threw (a blocked inline script would say so here).
        assert not [e for e in errors if "Content Security Policy" in e or "Error" in e], errors


async def _fill_address(page: Page, phone: str) -> None:
    await page.fill("#f-recipient", "王小明")
    await page.fill("#f-phone", phone)
    await page.fill("#f-province", "云南省")
    await page.fill("#f-city", "昆明市")
    await page.fill("#f-line1", "翠湖南路 1 号")


async def _shop_orders(api: httpx.AsyncClient, demo: Demo) -> list[dict[str, Any]]:
    answer = await api.get("/v1/shops/mine/orders", headers=demo.keeper)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_a_buyer_opens_a_share_link_and_buys(
    served: Served, api: httpx.AsyncClient, browser_page: Page
) -> None:
    demo = await _demo(api, served)
    page = browser_page
    await page.goto(f"{served.base}/s/{demo.link_code}")
    # Landed on the product page, the token out of the address bar and in a cookie.
    assert page.url == f"{served.base}/m/{demo.slug}/p/{demo.product_id}"
    await page.wait_for_load_state("networkidle")
    assert await page.locator("h1").inner_text() == "云南普洱茶饼 357g"
    assert await page.locator(".price.big").inner_text() == "¥140.80 起"
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways on a phone"
    await page.screenshot(path=SHOTS / "store-product.png", full_page=True)
    await page.screenshot(path=SHOTS / "store-product-phone.png")  # what the phone shows first

    await page.locator("label.variant", has_text="2019").click()
    await page.click("[data-add-to-cart]")
    cart = page.locator("[data-cart-link]")
    await cart.wait_for(state="visible")
    assert await page.locator("[data-cart-count]").inner_text() == "1"
    await page.locator("label.variant", has_text="2015").click()
    await page.click("[data-add-to-cart]")
    assert await page.locator("[data-cart-count]").inner_text() == "2"
    await cart.click()
    await page.wait_for_url(f"**/m/{demo.slug}/checkout?**")
    assert await page.locator(".summary .lines li").count() == 2
    # Second thoughts about the 2015 cake: out of the cart.
    await page.locator(".lines li", has_text="2015").locator("[data-remove]").click()
    await page.wait_for_function("document.querySelectorAll('.summary .lines li').length === 1")
    assert await page.locator("[data-cart-count]").inner_text() == "1"
    assert "¥140.80 × 1" in await page.locator(".summary").inner_text()
    assert "¥8.00" in await page.locator(".summary").inner_text()  # the supplier's shipping

    await _fill_address(page, "1234")
    await page.click("button.place")
    error = page.locator("#e-phone")
    await error.wait_for()
    assert "有效的手机号码" in await error.inner_text()
    assert await page.locator("#f-phone").get_attribute("aria-invalid") == "true"
    await page.screenshot(path=SHOTS / "store-checkout-error.png", full_page=True)

    await page.fill("#f-phone", "13800138000")
    await page.click("button.place")
    await page.wait_for_url("**/m/o/**")
    assert await page.get_attribute("[data-order-status]", "data-order-status") == (
        "pending_payment"
    )
    assert "?t=xpo_" in await page.locator(".placed").inner_text()
    # The cart is emptied once its order is placed.
    assert await page.evaluate(f"localStorage.getItem('xp_cart:{demo.slug}')") is None

    await page.click("form[action*='/pay'] button")
    await page.wait_for_url("**/sandbox**")
    await page.screenshot(path=SHOTS / "store-sandbox.png", full_page=True)
    await page.click("button[value=paid]")
    await page.wait_for_url("**/m/o/**")
    assert "/sandbox" not in page.url
    status = page.locator("[data-order-status]")
    assert await status.get_attribute("data-order-status") == "paid"
    assert await status.inner_text() == "已付款"
    await page.screenshot(path=SHOTS / "store-order.png", full_page=True)

    (order,) = await _shop_orders(api, demo)
    assert order["status"] == "paid"
    assert order["attribution"] == "link"
    assert order["link_id"] == demo.link_id


async def test_reload_and_double_submit_place_one_order(
    served: Served, api: httpx.AsyncClient, browser_page: Page
) -> None:
    demo = await _demo(api, served)
    page = browser_page
    await page.goto(f"{served.base}/m/{demo.slug}/p/{demo.product_id}")
    await page.click("button[type=submit]")  # buy now
    await page.wait_for_url("**/checkout?**")
    await _fill_address(page, "13800138000")
    # Two taps on "place order" before the first answer arrives.
    await page.dblclick("button.place", delay=5)
    # The second tap aborts the first tap's navigation, which wait_for_url would report as a
    # failure; the page's address is what settles it.
    await expect(page).to_have_url(re.compile(r"/m/o/"), timeout=15_000)
    await page.reload()
    await page.go_back()  # the checkout page, and the same form sent once more
    if "/checkout" in page.url:
        await page.reload()
    await asyncio.sleep(0.2)
    orders = await _shop_orders(api, demo)
    assert len(orders) == 1, orders


async def _fits(page: Page, where: str) -> None:
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    wide = await page.evaluate(
        """[...document.querySelectorAll('body *')]
           .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth)
           .map(e => e.tagName + '.' + e.className).slice(0, 8)"""
    )
    assert overflow <= 0, (where, overflow, wide)


@pytest.mark.parametrize("width", [360, 180], ids=["360px", "360px-at-200%-zoom"])
async def test_pages_fit_a_narrow_phone_and_zoom(
    served: Served, api: httpx.AsyncClient, browser_page: Page, width: int
) -> None:
    """Nothing scrolls sideways at 360 px, nor at 200% zoom (a 180 px wide layout), and every
    form field has a label."""
    demo = await _demo(api, served)
    page = browser_page
    await page.set_viewport_size({"width": width, "height": 740})
    for path in (f"/m/{demo.slug}", f"/m/{demo.slug}/p/{demo.product_id}"):
        await page.goto(f"{served.base}{path}")
        await _fits(page, path)
    await page.screenshot(path=SHOTS / f"store-product-{width}.png", full_page=True)
    await page.click("button[type=submit]")  # buy now
    await page.wait_for_url("**/checkout?**")
    await _fits(page, "checkout")
    unlabelled = await page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
           .filter(e => !(e.labels && e.labels.length)).map(e => e.name)"""
    )
    assert unlabelled == []
    await page.screenshot(path=SHOTS / f"store-checkout-{width}.png", full_page=True)
