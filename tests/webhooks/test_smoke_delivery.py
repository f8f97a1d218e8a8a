"""End to end: an event reaches a real receiver, signed, through the real worker."""

from __future__ import annotations

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import make_settings
from tests.factories import api_key, supplier
from tests.webhooks.receiver import receiver
from xiaopu.worker import run_worker


@pytest.mark.concurrent
async def test_api_key_created_event_is_delivered_and_verifies(
    concurrent_client: httpx.AsyncClient, fresh_db_url: str
) -> None:
    client = concurrent_client
    with receiver() as hook:
        supplier_id, owner = await supplier(client)
        created = await client.post(
            f"/v1/suppliers/{supplier_id}/webhook-endpoints",
            json={"url": hook.url, "event_types": ["api_key.created"]},
            headers=owner,
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_")

        key = await api_key(client, supplier_id, owner, ["supplier:read"])

        settings = make_settings(fresh_db_url, webhook_allow_loopback=True)
        await run_worker(settings, drain=True)

        (delivery,) = await hook.wait_for(1)
        payload = Webhook(secret).verify(delivery.body, delivery.headers)
        assert payload["type"] == "api_key.created"
        assert payload["data"]["id"] == key["id"]
        assert "key" not in payload["data"]
        assert delivery.headers["webhook-id"].startswith("msg_")
