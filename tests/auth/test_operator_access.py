"""CurrentOperator admits operators only."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import bearer, make_operator, signup
from xiaopu.app import create_app
from xiaopu.auth.auth import CurrentOperator
from xiaopu.config import Settings


@pytest.fixture
async def operator_client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> httpx.AsyncClient:
    app = create_app(settings, sessionmaker=sessionmaker)

    async def operator_only(operator: CurrentOperator) -> dict[str, str]:
        return {"account_id": str(operator.account_id)}

    app.add_api_route("/operator-only", operator_only, operation_id="test-operator_only")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_operator_is_admitted_and_others_are_forbidden(
    operator_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    async with operator_client as client:
        person = await signup(client)
        operator = await signup(client)
        await make_operator(session, operator["account"]["id"])

        refused = await client.get(
            "/operator-only", headers=bearer(person["tokens"]["access_token"])
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"

        admitted = await client.get(
            "/operator-only", headers=bearer(operator["tokens"]["access_token"])
        )
        assert admitted.status_code == 200
        assert admitted.json() == {"account_id": operator["account"]["id"]}

        anonymous = await client.get("/operator-only")
        assert anonymous.status_code == 401
