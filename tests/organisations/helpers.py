"""Builders for organisation tests: an organisation made by an operator, codes, joining."""

from __future__ import annotations

from typing import Any

import httpx

from tests.catalogue.helpers import Actor

Headers = dict[str, str]

CONTRACT = {
    "override_bps": 2000,
    "currency": "CNY",
    "monthly_cap_minor": 500_000,
    "min_active_shops": 2,
}


async def create_organisation(
    client: httpx.AsyncClient, op: Headers, admin: Actor, name: str = "昆明青年创业联盟"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/operator/organisations",
        json={
            "name": name,
            "kind": "city_partner",
            "contract": CONTRACT,
            "admin": {"email": admin.email},
        },
        headers=op,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_code(
    client: httpx.AsyncClient, org_id: str, member: Headers, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/organisations/{org_id}/invite-codes", json=body, headers=member
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def open_with_code(client: httpx.AsyncClient, person: Headers, code: str) -> httpx.Response:
    return await client.post("/v1/shops", json={"invite_code": code}, headers=person)
