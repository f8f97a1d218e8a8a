"""The order page: a guest's link from another device, shipping details, and a return asked for
within the window, then refunded."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.storefront.helpers import GOOD_ADDRESS, checkout_form, hidden, storefront_shop


async def _paid_order(
    client: httpx.AsyncClient, session: AsyncSession
) -> tuple[dict[str, object], str, str]:
    """(shop, order id, the order's link) of a paid order of 2 units."""
    shop = await storefront_shop(client, session)
    slug = str(shop["slug"])
    variant = shop["products"][0]["variants"][0]  # type: ignore[index]
    _, fields = await checkout_form(client, slug, [(variant, 2)])
    placed = await client.post(f"/m/{slug}/checkout", data={**fields, **GOOD_ADDRESS})
    assert placed.status_code == 303, placed.text
    page = await client.get(placed.headers["location"])
    link = re.search(r'href="(http[^"]+\?t=xpo_[^"]+)"', page.text)
    assert link
    order_id = placed.headers["location"].split("/")[3].split("?")[0]
    opened = await client.post(f"/m/o/{order_id}/pay", data={"csrf": hidden(page.text, "csrf")})
    assert opened.status_code == 303
    sandbox = await client.get(opened.headers["location"])
    paid = await client.post(
        f"/m/o/{order_id}/sandbox", data={"csrf": hidden(sandbox.text, "csrf"), "outcome": "paid"}
    )
    assert paid.status_code == 303
    return shop, order_id, link.group(1)


async def test_the_orders_link_opens_it_on_another_device(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    _, order_id, link = await _paid_order(client, session)
    client.cookies.clear()  # another device
    assert (await client.get(f"/m/o/{order_id}")).status_code == 404
    path = link.removeprefix("http://127.0.0.1:8000")
    opened = await client.get(path)
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/m/o/{order_id}"  # the token out of the address bar
    assert "HttpOnly" in opened.headers["set-cookie"]
    assert f"Path=/m/o/{order_id}" in opened.headers["set-cookie"]
    page = await client.get(opened.headers["location"])
    assert page.status_code == 200
    assert 'data-order-status="paid"' in page.text
    # A wrong token opens nothing.
    client.cookies.clear()
    wrong = await client.get(f"/m/o/{order_id}?t=xpo_{uuid.uuid4().hex}")
    assert (await client.get(wrong.headers["location"])).status_code == 404


async def test_a_delivered_line_can_be_returned_within_its_window(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    shop, order_id, _ = await _paid_order(client, session)
    owner = shop["owner"]
    assert isinstance(owner, dict)
    supplier_id = shop["supplier_id"]
    before = await client.get(f"/m/o/{order_id}")
    assert "申请退货" not in before.text  # not delivered yet
    (part,) = (await client.get(f"/v1/suppliers/{supplier_id}/orders", headers=owner)).json()[
        "items"
    ]
    base = f"/v1/suppliers/{supplier_id}/orders/{part['id']}"
    for step, body in (
        ("accept", None),
        ("ship", {"carrier": "SF", "tracking_number": "SF1234567"}),
        ("deliver", None),
    ):
        done = await client.post(
            f"{base}/{step}", json=body, headers={**owner, "Idempotency-Key": uuid.uuid4().hex}
        )
        assert done.status_code == 200, done.text
    page = await client.get(f"/m/o/{order_id}")
    assert "SF1234567" in page.text
    assert "已签收" in page.text
    assert "申请退货" in page.text
    line_id = hidden(page.text, "line_id")
    form = {
        "csrf": hidden(page.text, "csrf"),
        "key": hidden(page.text, "key"),
        "line_id": line_id,
        "quantity": "1",
        "reason": "茶饼有破损 <b>broken</b>",
    }
    asked = await client.post(f"/m/o/{order_id}/returns", data=form)
    assert asked.status_code == 303
    assert "msg=return_requested" in asked.headers["location"]
    twice = await client.post(f"/m/o/{order_id}/returns", data=form)  # a double tap
    assert twice.status_code == 303
    returns = await client.get(f"/v1/suppliers/{supplier_id}/returns", headers=owner)
    (row,) = returns.json()["items"]
    assert row["quantity"] == 1
    approved = await client.post(
        f"/v1/suppliers/{supplier_id}/returns/{row['id']}/approve",
        json={},
        headers={**owner, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert approved.status_code == 200, approved.text
    after = await client.get(f"/m/o/{order_id}")
    assert "已退款" in after.text
    assert "¥140.80" in after.text  # one unit refunded
