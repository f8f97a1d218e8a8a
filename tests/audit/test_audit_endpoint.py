"""GET /v1/operator/audit: operators read who did what, filtered and a page at a time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import assert_problem
from tests.catalogue.helpers import Actor, new_actor, operator
from tests.factories import supplier
from tests.orders.helpers import buyer_headers, key, market
from tests.settlements.helpers import delivered_order
from xiaopu.kit.clock import Clock

AUDIT = "/v1/operator/audit"


async def _count(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT count(*) FROM audit_records")) or 0)


async def test_a_decision_is_recorded_with_its_operator_reason_and_states(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    supplier_id, _ = await supplier(client)
    rejected = await client.post(
        f"/v1/operator/suppliers/{supplier_id}/reject",
        json={"reason": "no business licence"},
        headers=op.headers,
    )
    assert rejected.status_code == 200, rejected.text

    listed = await client.get(AUDIT, params={"object_id": supplier_id}, headers=op.headers)
    assert listed.status_code == 200, listed.text
    (record,) = listed.json()["items"]
    assert record["seq"] >= 1
    assert record["operator"] == {
        "account_id": op.account_id,
        "display_name": None,
        "login": op.email,
    }
    assert record["actor"] == op.email
    assert (record["action"], record["object_type"]) == ("supplier.reject", "supplier")
    assert record["reason"] == "no business licence"
    assert record["before"] == {"status": "pending", "status_reason": None}
    assert record["after"] == {"status": "rejected", "status_reason": "no business licence"}
    assert len(record["hash"]) == len(record["prev_hash"]) == 64

    # A refused action writes nothing: the record goes with the change or not at all.
    before = await _count(session)
    again = await client.post(
        f"/v1/operator/suppliers/{supplier_id}/suspend",
        json={"reason": "not active"},
        headers=op.headers,
    )
    assert_problem(again, 409, "invalid_supplier_transition")
    assert await _count(session) == before


async def test_an_overruled_rejection_and_a_replayed_retry_of_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    m = await market(client, session)
    supply = m.suppliers[0]
    order = await delivered_order(client, m, 1)
    (part,) = order["supplier_orders"]
    asked = await client.post(
        f"/v1/orders/{order['id']}/returns",
        json={"line_id": part["lines"][0]["id"], "quantity": 1, "reason": "broken"},
        headers=buyer_headers(order),
    )
    return_id = asked.json()["id"]
    refused = await client.post(
        f"/v1/suppliers/{supply.id}/returns/{return_id}/reject",
        json={"note": "used"},
        headers={**supply.headers, **key()},
    )
    assert refused.status_code == 200, refused.text
    decision_key = key()
    path = f"/v1/operator/returns/{return_id}/decide"
    body = {"decision": "approve", "note": "the carrier broke it"}
    overruled = await client.post(path, json=body, headers={**m.op.headers, **decision_key})
    assert overruled.status_code == 200, overruled.text
    replayed = await client.post(path, json=body, headers={**m.op.headers, **decision_key})
    assert replayed.headers["idempotent-replayed"] == "true"

    records = (
        await client.get(AUDIT, params={"object_type": "return"}, headers=m.op.headers)
    ).json()["items"]
    (record,) = [r for r in records if r["object_id"] == return_id]  # the replay wrote none
    assert record["action"] == "return.overrule"
    assert record["reason"] == "the carrier broke it"
    assert record["before"] == {"status": "rejected", "decided_by": "supplier"}
    assert record["after"] == {"status": "approved", "decided_by": "operator", "restock": False}


async def _approvals(client: httpx.AsyncClient, op: Actor, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        supplier_id, _ = await supplier(client)
        approved = await client.post(
            f"/v1/operator/suppliers/{supplier_id}/approve", headers=op.headers
        )
        assert approved.status_code == 200, approved.text
        ids.append(supplier_id)
    return ids


async def test_filters_and_pages(
    client: httpx.AsyncClient, session: AsyncSession, test_clock: Clock
) -> None:
    first, second = await operator(client, session), await operator(client, session)
    start = test_clock.freeze()
    mine = await _approvals(client, first, 3)
    test_clock.advance(timedelta(minutes=10))  # within the access tokens' life
    theirs = await _approvals(client, second, 2)
    suspended = await client.post(
        f"/v1/operator/suppliers/{theirs[0]}/suspend",
        json={"reason": "complaints"},
        headers=second.headers,
    )
    assert suspended.status_code == 200, suspended.text

    async def listed(**params: str | int) -> list[dict[str, object]]:
        response = await client.get(AUDIT, params=params, headers=first.headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, object]] = response.json()["items"]
        return items

    by_first = await listed(operator=first.account_id)
    assert [r["object_id"] for r in by_first] == mine[::-1]  # newest first
    assert [r["action"] for r in await listed(operator=second.account_id)] == [
        "supplier.suspend",
        "supplier.approve",
        "supplier.approve",
    ]
    assert [r["object_id"] for r in await listed(action="supplier.suspend")] == [theirs[0]]
    assert [r["action"] for r in await listed(object_type="supplier", object_id=theirs[0])] == [
        "supplier.suspend",
        "supplier.approve",
    ]
    later = (start + timedelta(minutes=5)).isoformat()
    assert {r["object_id"] for r in await listed(since=later)} == set(theirs)
    assert [r["object_id"] for r in await listed(until=later)][:3] == mine[::-1]
    assert await listed(operator=str(uuid.uuid4())) == []

    seen: list[object] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "since": start.isoformat()}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(AUDIT, params=params, headers=first.headers)).json()
        seen += [r["seq"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6
    assert seen == sorted(seen, reverse=True)

    bad = await client.get(AUDIT, params={"cursor": "bm9wZQ"}, headers=first.headers)
    assert_problem(bad, 400, "invalid_cursor")
    unknown = await client.get(AUDIT, params={"action": "supplier.delete"}, headers=first.headers)
    assert unknown.status_code == 422


async def test_only_operators_read_the_log(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    person = await new_actor(client)
    assert_problem(await client.get(AUDIT, headers=person.headers), 403, "forbidden")
    assert_problem(await client.get(AUDIT), 401, "unauthenticated")
