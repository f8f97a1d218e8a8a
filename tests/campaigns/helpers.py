"""Builders for campaign tests: a campaign's body, making and scheduling one, the clock's job."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import Actor
from tests.factories import PASSWORD, bearer
from tests.orders.helpers import Supply, key, run_schedule
from xiaopu.config import Settings


def body(
    variant_id: str,
    now: datetime,
    *,
    price: int = 8_000,
    units: int = 10,
    boost_bps: int = 500,
    budget: int | None = 1_000,
    recruitment: str = "open",
    warm_up: timedelta = timedelta(hours=1),
    start: timedelta = timedelta(hours=2),
    length: timedelta = timedelta(days=1),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "title": "云南春茶超级品牌团",
        "brief": {
            "selling_points": ["明前头采", "产地直发"],
            "images": ["https://img.example.com/tea.jpg"],
            "share_text": "春茶限时 8 折，群里的朋友先抢！",
        },
        "recruitment": recruitment,
        "boost_bps": boost_bps,
        "budgets": [] if budget is None else [{"currency": "CNY", "amount_minor": budget}],
        "warm_up_at": (now + warm_up).isoformat(),
        "starts_at": (now + start).isoformat(),
        "ends_at": (now + start + length).isoformat(),
        "items": [{"variant_id": variant_id, "price_minor": price, "allocated_units": units}],
        **extra,
    }


async def create(client: httpx.AsyncClient, supply: Supply, data: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        f"/v1/suppliers/{supply.id}/campaigns", json=data, headers={**supply.headers, **key()}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def act(
    client: httpx.AsyncClient, supply: Supply, campaign_id: str, action: str
) -> httpx.Response:
    return await client.post(
        f"/v1/suppliers/{supply.id}/campaigns/{campaign_id}/{action}",
        headers={**supply.headers, **key()},
    )


async def scheduled(
    client: httpx.AsyncClient, supply: Supply, data: dict[str, Any]
) -> dict[str, Any]:
    campaign = await create(client, supply, data)
    response = await act(client, supply, campaign["id"], "schedule")
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


async def sign_up(client: httpx.AsyncClient, keeper: Actor, campaign_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/shops/mine/campaigns/{campaign_id}/signup", headers={**keeper.headers, **key()}
    )


async def tick(session: AsyncSession, settings: Settings) -> None:
    await run_schedule(session, settings, "campaigns.tick")


async def login(client: httpx.AsyncClient, actor: Actor) -> Actor:
    """Fresh tokens for an actor, after the clock has moved past their access token's life."""
    response = await client.post(
        "/v1/auth/login", json={"login": actor.email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    actor.headers = bearer(response.json()["access_token"])
    return actor


async def campaign(client: httpx.AsyncClient, supply: Supply, campaign_id: str) -> dict[str, Any]:
    response = await client.get(
        f"/v1/suppliers/{supply.id}/campaigns/{campaign_id}", headers=supply.headers
    )
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out
