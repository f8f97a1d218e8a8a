"""An organisation is seen by its members only (404 for everyone else), shows only its own
cohort, and only operators run organisations and move shops."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import assert_problem, new_actor, open_shop, operator
from tests.organisations.helpers import CONTRACT, create_organisation, new_code, open_with_code


async def test_other_organisations_and_strangers_get_404_and_see_no_outside_shop(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    admin_a, admin_b, stranger = [await new_actor(client) for _ in range(3)]
    org_a = await create_organisation(client, op.headers, admin_a, name="A")
    org_b = await create_organisation(client, op.headers, admin_b, name="B")
    code_a = await new_code(client, org_a["id"], admin_a.headers)
    code_b = await new_code(client, org_b["id"], admin_b.headers)
    in_a, in_b, outside = [await new_actor(client) for _ in range(3)]
    assert (await open_with_code(client, in_a.headers, code_a["code"])).status_code == 201
    assert (await open_with_code(client, in_b.headers, code_b["code"])).status_code == 201
    await open_shop(client, outside.headers)
    notice = await client.post(
        f"/v1/organisations/{org_a['id']}/notices",
        json={"title": "Hello", "body": "Welcome"},
        headers=admin_a.headers,
    )
    assert notice.status_code == 201, notice.text
    a = f"/v1/organisations/{org_a['id']}"
    paths = [
        a,
        f"{a}/members",
        f"{a}/invite-codes",
        f"{a}/invite-codes/{code_a['id']}",
        f"{a}/invite-codes/{code_a['id']}/qr.svg",
        f"{a}/cohort",
        f"{a}/cohort/days",
        f"{a}/notices",
        f"{a}/notices/{notice.json()['id']}",
        f"{a}/notices/{notice.json()['id']}/recipients",
    ]
    for who in (admin_b, stranger, in_a):  # another's admin, a stranger, a shop of the cohort
        for path in paths:
            assert_problem(
                await client.get(path, headers=who.headers), 404, "organisation_not_found"
            )
        made = await client.post(f"{a}/invite-codes", json={}, headers=who.headers)
        assert_problem(made, 404, "organisation_not_found")
    # B's objects are not found through A, even by A's admin.
    assert_problem(
        await client.get(f"{a}/invite-codes/{code_b['id']}", headers=admin_a.headers),
        404,
        "invite_code_not_found",
    )

    # A's cohort holds its own shop only; A's notice reached it alone.
    cohort = await client.get(f"{a}/cohort", headers=admin_a.headers)
    assert [s["shop_id"] for s in cohort.json()["items"]] == [
        (await client.get("/v1/shops/mine", headers=in_a.headers)).json()["id"]
    ]
    for who in (in_b, outside):
        inbox = await client.get("/v1/shops/mine/notices", headers=who.headers)
        assert inbox.json()["items"] == []
        read = await client.post(
            f"/v1/shops/mine/notices/{notice.json()['id']}/read", headers=who.headers
        )
        assert_problem(read, 404, "notice_not_found")

    # Only operators create organisations, change contracts and move shops.
    body = {"name": "C", "kind": "team", "contract": CONTRACT, "admin": {"email": stranger.email}}
    assert_problem(
        await client.post("/v1/operator/organisations", json=body, headers=admin_a.headers),
        403,
        "forbidden",
    )
    shop_id = (await client.get("/v1/shops/mine", headers=outside.headers)).json()["id"]
    move = {"organisation_id": org_a["id"], "reason": "asked"}
    assert_problem(
        await client.post(
            f"/v1/operator/shops/{shop_id}/organisation", json=move, headers=admin_a.headers
        ),
        403,
        "forbidden",
    )
    # Unknown fields are refused: no one sets a status or a cohort they should not.
    sneaky = await client.post(
        "/v1/shops", json={"organisation_id": org_a["id"]}, headers=stranger.headers
    )
    assert sneaky.status_code == 422


async def test_a_suspended_organisations_codes_stop_working(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    admin, person = await new_actor(client), await new_actor(client)
    org = await create_organisation(client, op.headers, admin)
    code = await new_code(client, org["id"], admin.headers)
    suspended = await client.post(
        f"/v1/operator/organisations/{org['id']}/suspend",
        json={"reason": "contract under review"},
        headers=op.headers,
    )
    assert suspended.json()["status"] == "suspended"
    refused = await open_with_code(client, person.headers, code["code"])
    assert_problem(refused, 409, "organisation_suspended")
    made = await client.post(
        f"/v1/organisations/{org['id']}/invite-codes", json={}, headers=admin.headers
    )
    assert_problem(made, 409, "organisation_suspended")
    # Nor does money leave it while suspended: the refusal comes before any balance check.
    withdrawn = await client.post(
        f"/v1/organisations/{org['id']}/withdrawals",
        json={"amount_minor": 100, "currency": "CNY"},
        headers={**admin.headers, "Idempotency-Key": "suspended-withdrawal"},
    )
    assert_problem(withdrawn, 409, "organisation_suspended")
    resumed = await client.post(
        f"/v1/operator/organisations/{org['id']}/resume",
        json={"reason": "reviewed"},
        headers=op.headers,
    )
    assert resumed.json()["status"] == "active"
    assert (await open_with_code(client, person.headers, code["code"])).status_code == 201
