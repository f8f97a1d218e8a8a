"""Checkout, payment and the order page in the storefront, as a browser without JavaScript
would use them, over the real app."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.storefront.helpers import GOOD_ADDRESS, checkout_form, hidden, storefront_shop
from xiaopu.models import Order


async def _place(
    client: httpx.AsyncClient, slug: str, variant: str, **address: str
) -> httpx.Response:
    page, fields = await checkout_form(client, slug, [(variant, 1)])
    assert page.status_code == 200, page.text
    return await client.post(f"/m/{slug}/checkout", data={**fields, **GOOD_ADDRESS, **address})


async def test_checkout_pay_and_see_the_order(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(
        client,
        session,
        shipping_fee_minor=1000,
        products=[
            {"variants": [{"price_minor": 12800, "stock": 5}]},
            {"title": "滇红", "variants": [{"price_minor": 8800, "stock": 5}]},
        ],
    )
    slug = shop["slug"]
    items = [(shop["products"][0]["variants"][0], 2), (shop["products"][1]["variants"][0], 1)]
    page, fields = await checkout_form(client, slug, items)
    assert page.status_code == 200, page.text
    # One supplier: items 2 × 140.80 + 96.80, shipping once.
    assert "¥281.60" in page.text  # 2 × 140.80
    assert "¥10.00" in page.text
    assert "¥388.40" in page.text

    wrong = await client.post(
        f"/m/{slug}/checkout", data={**fields, **GOOD_ADDRESS, "phone": "12345"}
    )
    assert wrong.status_code == 422
    assert 'aria-invalid="true" aria-describedby="e-phone"' in wrong.text
    assert "请输入有效的手机号码" in wrong.text
    assert hidden(wrong.text, "key") == fields["key"]  # the same checkout, the same key
    assert 'value="王小明"' in wrong.text  # what was typed stays

    placed = await client.post(f"/m/{slug}/checkout", data={**fields, **GOOD_ADDRESS})
    assert placed.status_code == 303, placed.text
    order_url = placed.headers["location"]
    assert re.fullmatch(rf"/m/o/[0-9a-f-]{{36}}\?shop={slug}&placed=1", order_url)
    assert "HttpOnly" in placed.headers["set-cookie"]
    assert "xp_ot=xpo_" in placed.headers["set-cookie"]

    order = await client.get(order_url)
    assert order.status_code == 200, order.text
    assert 'data-order-status="pending_payment"' in order.text
    assert "?t=xpo_" in order.text  # the order's link, shown once
    order_id = order_url.split("/")[3].split("?")[0]

    paying = await client.post(
        f"/m/o/{order_id}/pay?shop={slug}", data={"csrf": hidden(order.text, "csrf")}
    )
    assert paying.status_code == 303
    sandbox = await client.get(paying.headers["location"])
    assert sandbox.status_code == 200
    assert "¥388.40" in sandbox.text
    # Not paid until the callback is applied.
    again = await client.get(f"/m/o/{order_id}")
    assert 'data-order-status="pending_payment"' in again.text

    paid = await client.post(
        f"/m/o/{order_id}/sandbox", data={"csrf": hidden(sandbox.text, "csrf"), "outcome": "paid"}
    )
    assert paid.status_code == 303
    after = await client.get(paid.headers["location"])
    assert 'data-order-status="paid"' in after.text
    assert "?t=xpo_" not in after.text  # the link was shown once

    api = await client.get(f"/v1/orders/{order_id}", headers={"X-Order-Token": _token(placed)})
    assert api.json()["status"] == "paid"


def _token(response: httpx.Response) -> str:
    match = re.search(r"xp_ot=(xpo_[A-Za-z0-9_-]+)", response.headers["set-cookie"])
    assert match
    return match.group(1)


async def test_a_repeated_post_places_one_order(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    slug, variant = shop["slug"], shop["products"][0]["variants"][0]
    _, fields = await checkout_form(client, slug, [(variant, 1)])
    first = await client.post(f"/m/{slug}/checkout", data={**fields, **GOOD_ADDRESS})
    second = await client.post(f"/m/{slug}/checkout", data={**fields, **GOOD_ADDRESS})
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    count = await session.scalar(
        select(func.count()).select_from(Order).where(Order.buyer_phone == "+8613800138000")
    )
    assert count == 1


async def test_the_share_link_attributes_the_order(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    keeper = shop["keeper"]
    link = await client.post(
        "/v1/shops/mine/links", json={"product_id": shop["products"][0]["id"]}, headers=keeper
    )
    assert link.status_code == 201, link.text
    code = link.json()["code"]
    redirect = await client.get(f"/s/{code}", headers={"user-agent": "Mozilla/5.0 (iPhone)"})
    assert redirect.status_code == 302
    # The redirect names the public base URL; this client is that host under another name.
    target = urlsplit(redirect.headers["location"])
    landing = await client.get(f"{target.path}?{target.query}")
    assert landing.status_code == 303
    assert "xp_at=" in landing.headers["set-cookie"]
    product_url = landing.headers["location"]
    assert "/p/" in product_url
    assert "xp_at" not in product_url
    product = await client.get(product_url)
    assert product.status_code == 200
    variant = re.search(r'name="v" value="([0-9a-f-]{36})"', product.text)
    assert variant
    slug = product_url.split("/")[2]
    placed = await _place(client, slug, variant.group(1))
    assert placed.status_code == 303, placed.text
    orders = await client.get("/v1/shops/mine/orders", headers=keeper)
    (row,) = orders.json()["items"]
    assert row["attribution"] == "link"
    assert row["link_id"] == link.json()["id"]


async def test_a_form_post_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    slug, variant = shop["slug"], shop["products"][0]["variants"][0]
    _, fields = await checkout_form(client, slug, [(variant, 1)])
    forged = await client.post(
        f"/m/{slug}/checkout", data={**fields, "csrf": "x" * 43, **GOOD_ADDRESS}
    )
    assert forged.status_code == 403
    assert forged.headers["content-type"].startswith("text/html")
    # A cross-site form carries no cookie of ours: refused too.
    client.cookies.clear()
    bare = await client.post(f"/m/{slug}/checkout", data={**fields, **GOOD_ADDRESS})
    assert bare.status_code == 403
    assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_a_declined_payment_leaves_the_order_waiting(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    placed = await _place(client, shop["slug"], shop["products"][0]["variants"][0])
    order = await client.get(placed.headers["location"])
    order_id = placed.headers["location"].split("/")[3].split("?")[0]
    opened = await client.post(f"/m/o/{order_id}/pay", data={"csrf": hidden(order.text, "csrf")})
    sandbox = await client.get(opened.headers["location"])
    declined = await client.post(
        f"/m/o/{order_id}/sandbox",
        data={"csrf": hidden(sandbox.text, "csrf"), "outcome": "failed"},
    )
    after = await client.get(declined.headers["location"])
    assert 'data-order-status="pending_payment"' in after.text
    assert "付款未成功" in after.text
    assert "去付款" in after.text  # and may pay again


async def test_a_forged_attribution_token_is_not_kept(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop = await storefront_shop(client, session)
    product = shop["products"][0]["id"]
    landing = await client.get(f"/m/{shop['slug']}", params={"product": product, "xp_at": "A" * 92})
    assert landing.status_code == 303
    assert landing.headers["location"] == f"/m/{shop['slug']}/p/{product}"
    assert "set-cookie" not in landing.headers
