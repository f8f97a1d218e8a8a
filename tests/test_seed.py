"""Demo data: loaded once, and a newcomer can click through it."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.seed import DEMO_LOGINS, DEMO_PASSWORD, seed_demo


async def test_demo_loads_once_and_is_usable(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    assert await seed_demo(session) is True
    assert await seed_demo(session) is False
    await session.commit()

    public = await client.get("/v1/shops/xiaolin/products")
    assert public.status_code == 200, public.text
    titles = {p["title"] for p in public.json()["items"]}
    assert any("普洱" in t for t in titles)

    preview = await client.get("/s/DemoPuer2026", headers={"user-agent": "Twitterbot/1.0"})
    assert preview.status_code == 200
    assert "og:title" in preview.text
    redirect = await client.get("/s/DemoShop2026", headers={"user-agent": "Mozilla/5.0 (iPhone)"})
    assert redirect.status_code == 302

    supplier_login = await client.post(
        "/v1/auth/login", json={"login": DEMO_LOGINS[1].login, "password": DEMO_PASSWORD}
    )
    assert supplier_login.status_code == 200, supplier_login.text
    headers = {"Authorization": f"Bearer {supplier_login.json()['access_token']}"}
    (membership,) = (await client.get("/v1/suppliers", headers=headers)).json()["items"]
    assert membership["role"] == "owner"
    assert membership["supplier"]["status"] == "active"
