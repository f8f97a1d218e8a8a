"""Supplier members: owners add and remove them; staff and API keys may not; one owner stays."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import add_member, signup_ok, unique_phone
from tests.catalogue.helpers import Actor, assert_problem, assert_validation_error, new_actor
from tests.factories import api_key, bearer, signup, supplier, unique_email
from xiaopu.models import MemberRole


def members_url(supplier_id: str) -> str:
    return f"/v1/suppliers/{supplier_id}/members"


async def test_create_returns_contact_and_only_a_hint_of_the_payout_account(
    client: httpx.AsyncClient,
) -> None:
    owner = await new_actor(client)
    body = {
        "name": "云南茶园",
        "contact_name": "Li Wei",
        "contact_email": "Li.Wei@Example.com",
        "payout": {
            "method": "alipay",
            "account_name": "Li Wei",
            "account_number": "13900001234",
        },
    }

    response = await client.post("/v1/suppliers", json=body, headers=owner.headers)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "pending"
    assert created["contact_name"] == "Li Wei"
    assert created["contact_email"] == "li.wei@example.com"
    assert created["payout_method"] == "alipay"
    assert created["payout_account_hint"] == "1234"
    assert "13900001234" not in response.text


async def test_create_rejects_bad_payout_details(client: httpx.AsyncClient) -> None:
    owner = await new_actor(client)
    bad = {"method": "cash", "account_name": "Li", "account_number": "1234"}
    short = {"method": "alipay", "account_name": "Li", "account_number": "12"}

    for payout, loc in ((bad, "method"), (short, "account_number")):
        response = await client.post(
            "/v1/suppliers", json={"name": "Farm", "payout": payout}, headers=owner.headers
        )
        assert_validation_error(response, "body", "payout", loc)


async def test_list_my_suppliers_shows_each_with_my_role(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    me = await new_actor(client)
    mine, _ = await supplier(client, me.headers)
    other_owner = await new_actor(client)
    theirs, _ = await supplier(client, other_owner.headers)
    await add_member(session, theirs, me.account_id, MemberRole.staff)
    unrelated, _ = await supplier(client, other_owner.headers)

    response = await client.get("/v1/suppliers", headers=me.headers)

    assert response.status_code == 200, response.text
    roles = {m["supplier"]["id"]: m["role"] for m in response.json()["items"]}
    assert roles == {mine: "owner", theirs: "staff"}
    assert unrelated not in roles
    assert response.json()["next_cursor"] is None


async def test_list_my_suppliers_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    me = await new_actor(client)
    ids = {(await supplier(client, me.headers))[0] for _ in range(3)}

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/suppliers", params=params, headers=me.headers)
        assert response.status_code == 200, response.text
        seen += [m["supplier"]["id"] for m in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(ids)


async def test_owner_adds_an_existing_account_by_email_as_staff(
    client: httpx.AsyncClient,
) -> None:
    supplier_id, owner = await supplier(client)
    staff = await new_actor(client)

    response = await client.post(
        members_url(supplier_id), json={"login": staff.email.upper()}, headers=owner
    )

    assert response.status_code == 201, response.text
    member = response.json()
    assert member["role"] == "staff"
    assert member["account_id"] == staff.account_id
    assert member["email"] == staff.email
    # The new member now reads the supplier and sees its products.
    read = await client.get(f"/v1/suppliers/{supplier_id}", headers=staff.headers)
    assert read.status_code == 200, read.text
    products = await client.get(f"/v1/suppliers/{supplier_id}/products", headers=staff.headers)
    assert products.status_code == 200, products.text


async def test_owner_adds_a_member_by_phone(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    phone = unique_phone()
    account = await client.post(
        "/v1/auth/signup", json={"phone": phone, "password": "correct horse battery"}
    )
    assert account.status_code == 201, account.text

    response = await client.post(
        members_url(supplier_id), json={"login": phone, "role": "owner"}, headers=owner
    )

    assert response.status_code == 201, response.text
    assert response.json()["phone"] == phone
    assert response.json()["role"] == "owner"


async def test_adding_a_member_twice_is_a_conflict(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    staff = await new_actor(client)
    first = await client.post(members_url(supplier_id), json={"login": staff.email}, headers=owner)
    assert first.status_code == 201, first.text

    again = await client.post(members_url(supplier_id), json={"login": staff.email}, headers=owner)

    assert_problem(again, 409, "already_member")
    listed = await client.get(members_url(supplier_id), headers=owner)
    assert [m["account_id"] for m in listed.json()["items"]].count(staff.account_id) == 1


async def test_adding_the_owner_themself_is_a_conflict(client: httpx.AsyncClient) -> None:
    owner = await new_actor(client)
    supplier_id, _ = await supplier(client, owner.headers)

    response = await client.post(
        members_url(supplier_id), json={"login": owner.email}, headers=owner.headers
    )

    assert_problem(response, 409, "already_member")


async def test_adding_an_unknown_login_is_404(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    for login in ("nobody-here@example.com", "+8613900000000", "not a login"):
        response = await client.post(members_url(supplier_id), json={"login": login}, headers=owner)
        assert_problem(response, 404, "account_not_found")


async def test_add_member_validates_the_body(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    for body, loc in (
        ({}, "login"),
        ({"login": "a@example.com", "role": "admin"}, "role"),
        ({"login": "a@example.com", "supplier_id": str(uuid.uuid4())}, "supplier_id"),
    ):
        response = await client.post(members_url(supplier_id), json=body, headers=owner)
        assert_validation_error(response, "body", loc)


async def test_members_list_shows_owner_and_staff(client: httpx.AsyncClient) -> None:
    owner = await new_actor(client)
    supplier_id, _ = await supplier(client, owner.headers)
    staff = await new_actor(client)
    added = await client.post(
        members_url(supplier_id), json={"login": staff.email}, headers=owner.headers
    )
    assert added.status_code == 201, added.text

    for reader in (owner, staff):
        response = await client.get(members_url(supplier_id), headers=reader.headers)
        assert response.status_code == 200, response.text
        roles = {m["account_id"]: m["role"] for m in response.json()["items"]}
        assert roles == {owner.account_id: "owner", staff.account_id: "staff"}


async def test_owner_removes_a_staff_member(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    staff = await new_actor(client)
    added = await client.post(members_url(supplier_id), json={"login": staff.email}, headers=owner)
    member_id = added.json()["id"]

    response = await client.delete(f"{members_url(supplier_id)}/{member_id}", headers=owner)

    assert response.status_code == 204, response.text
    gone = await client.get(f"/v1/suppliers/{supplier_id}", headers=staff.headers)
    assert_problem(gone, 404, "supplier_not_found")
    again = await client.delete(f"{members_url(supplier_id)}/{member_id}", headers=owner)
    assert_problem(again, 404, "member_not_found")


async def test_the_last_owner_cannot_be_removed(client: httpx.AsyncClient) -> None:
    owner = await new_actor(client)
    supplier_id, _ = await supplier(client, owner.headers)
    listed = await client.get(members_url(supplier_id), headers=owner.headers)
    (me,) = listed.json()["items"]

    response = await client.delete(f"{members_url(supplier_id)}/{me['id']}", headers=owner.headers)

    assert_problem(response, 409, "last_owner")
    still = await client.get(f"/v1/suppliers/{supplier_id}", headers=owner.headers)
    assert still.status_code == 200, still.text


async def test_an_owner_may_leave_when_another_owner_remains(client: httpx.AsyncClient) -> None:
    first = await new_actor(client)
    supplier_id, _ = await supplier(client, first.headers)
    second = await new_actor(client)
    added = await client.post(
        members_url(supplier_id),
        json={"login": second.email, "role": "owner"},
        headers=first.headers,
    )
    assert added.status_code == 201, added.text
    listed = await client.get(members_url(supplier_id), headers=first.headers)
    first_member = next(m for m in listed.json()["items"] if m["account_id"] == first.account_id)

    left = await client.delete(
        f"{members_url(supplier_id)}/{first_member['id']}", headers=first.headers
    )

    assert left.status_code == 204, left.text
    # Now the second owner is the last one.
    second_member = added.json()["id"]
    last = await client.delete(
        f"{members_url(supplier_id)}/{second_member}", headers=second.headers
    )
    assert_problem(last, 409, "last_owner")


async def test_removing_an_unknown_member_is_404(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    response = await client.delete(f"{members_url(supplier_id)}/{uuid.uuid4()}", headers=owner)

    assert_problem(response, 404, "member_not_found")


async def test_staff_cannot_do_owner_only_actions(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await new_actor(client)
    supplier_id, _ = await supplier(client, owner.headers)
    staff = await new_actor(client)
    await add_member(session, supplier_id, staff.account_id, MemberRole.staff)
    members = (await client.get(members_url(supplier_id), headers=owner.headers)).json()["items"]
    owner_member = next(m for m in members if m["role"] == "owner")
    key = await api_key(client, supplier_id, owner.headers, ["products:read"])
    base = f"/v1/suppliers/{supplier_id}"

    calls = [
        client.post(members_url(supplier_id), json={"login": staff.email}, headers=staff.headers),
        client.delete(f"{members_url(supplier_id)}/{owner_member['id']}", headers=staff.headers),
        client.get(f"{base}/api-keys", headers=staff.headers),
        client.post(
            f"{base}/api-keys",
            json={"name": "x", "scopes": ["products:read"]},
            headers=staff.headers,
        ),
        client.delete(f"{base}/api-keys/{key['id']}", headers=staff.headers),
    ]
    for call in calls:
        assert_problem(await call, 403, "forbidden")

    after = (await client.get(members_url(supplier_id), headers=owner.headers)).json()["items"]
    assert {m["account_id"] for m in after} == {owner.account_id, staff.account_id}
    keys = await client.get(f"{base}/api-keys", headers=owner.headers)
    assert [k["id"] for k in keys.json()["items"]] == [key["id"]]


async def test_api_keys_cannot_manage_members(client: httpx.AsyncClient) -> None:
    owner = await new_actor(client)
    supplier_id, _ = await supplier(client, owner.headers)
    key = await api_key(client, supplier_id, owner.headers, ["supplier:read", "products:write"])
    headers = bearer(key["key"])
    listed = await client.get(members_url(supplier_id), headers=owner.headers)
    (owner_member,) = listed.json()["items"]

    added = await client.post(
        members_url(supplier_id), json={"login": owner.email}, headers=headers
    )
    removed = await client.delete(
        f"{members_url(supplier_id)}/{owner_member['id']}", headers=headers
    )

    assert_problem(added, 403, "forbidden")
    assert_problem(removed, 403, "forbidden")
    # supplier:read is enough to read the supplier and its members.
    assert (await client.get(members_url(supplier_id), headers=headers)).status_code == 200
    assert (await client.get(f"/v1/suppliers/{supplier_id}", headers=headers)).status_code == 200


async def test_api_key_without_supplier_read_cannot_read_members(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)
    key = await api_key(client, supplier_id, owner, ["products:read"])

    response = await client.get(members_url(supplier_id), headers=bearer(key["key"]))

    assert_problem(response, 403, "insufficient_scope")


async def test_another_supplier_cannot_see_or_change_members_or_keys(
    client: httpx.AsyncClient,
) -> None:
    """Owner B (member login) and B's API key get 404 on every route of supplier A."""
    a_owner = await new_actor(client)
    a_id, _ = await supplier(client, a_owner.headers)
    a_key = await api_key(client, a_id, a_owner.headers, ["products:read"])
    (a_member,) = (await client.get(members_url(a_id), headers=a_owner.headers)).json()["items"]
    b_owner = await new_actor(client)
    b_id, _ = await supplier(client, b_owner.headers)
    b_key = await api_key(client, b_id, b_owner.headers, ["supplier:read", "products:write"])
    stranger = await signup(client)

    for headers in (b_owner.headers, bearer(b_key["key"])):
        calls = [
            client.get(f"/v1/suppliers/{a_id}", headers=headers),
            client.get(members_url(a_id), headers=headers),
            client.post(
                members_url(a_id), json={"login": stranger["account"]["email"]}, headers=headers
            ),
            client.delete(f"{members_url(a_id)}/{a_member['id']}", headers=headers),
            client.get(f"/v1/suppliers/{a_id}/api-keys", headers=headers),
            client.post(
                f"/v1/suppliers/{a_id}/api-keys",
                json={"name": "x", "scopes": ["products:read"]},
                headers=headers,
            ),
            client.delete(f"/v1/suppliers/{a_id}/api-keys/{a_key['id']}", headers=headers),
        ]
        for call in calls:
            assert_problem(await call, 404, "supplier_not_found")

    # Nothing changed at A.
    members = (await client.get(members_url(a_id), headers=a_owner.headers)).json()["items"]
    assert [m["account_id"] for m in members] == [a_owner.account_id]
    keys = (await client.get(f"/v1/suppliers/{a_id}/api-keys", headers=a_owner.headers)).json()
    assert [(k["id"], k.get("revoked_at")) for k in keys["items"]] == [(a_key["id"], None)]


async def test_a_member_id_of_another_supplier_is_404_on_my_supplier(
    client: httpx.AsyncClient,
) -> None:
    """Owner B, on B's own supplier, cannot remove A's member by its id."""
    a_owner = await new_actor(client)
    a_id, _ = await supplier(client, a_owner.headers)
    staff = await new_actor(client)
    added = await client.post(
        members_url(a_id), json={"login": staff.email}, headers=a_owner.headers
    )
    b_id, b_owner = await supplier(client)

    response = await client.delete(f"{members_url(b_id)}/{added.json()['id']}", headers=b_owner)

    assert_problem(response, 404, "member_not_found")
    members = (await client.get(members_url(a_id), headers=a_owner.headers)).json()["items"]
    assert staff.account_id in {m["account_id"] for m in members}


async def test_member_routes_need_credentials(client: httpx.AsyncClient) -> None:
    supplier_id = str(uuid.uuid4())

    for call in (
        client.get("/v1/suppliers"),
        client.get(members_url(supplier_id)),
        client.post(members_url(supplier_id), json={"login": "a@example.com"}),
        client.delete(f"{members_url(supplier_id)}/{uuid.uuid4()}"),
    ):
        assert_problem(await call, 401, "unauthenticated")


async def test_only_owners_see_members_contact_details(client: httpx.AsyncClient) -> None:
    owner = await new_actor(client)
    supplier_id, _ = await supplier(client, owner.headers)
    staff_phone = unique_phone()
    staff = Actor(await signup_ok(client, email=unique_email(), phone=staff_phone))
    added = await client.post(
        members_url(supplier_id), json={"login": staff.email}, headers=owner.headers
    )
    assert added.status_code == 201, added.text
    key = await api_key(client, supplier_id, owner.headers, ["supplier:read"])

    def contacts(response: httpx.Response) -> dict[str, tuple[str | None, str | None]]:
        assert response.status_code == 200, response.text
        return {m["account_id"]: (m["email"], m["phone"]) for m in response.json()["items"]}

    as_owner = contacts(await client.get(members_url(supplier_id), headers=owner.headers))
    as_staff = contacts(await client.get(members_url(supplier_id), headers=staff.headers))
    as_key = contacts(await client.get(members_url(supplier_id), headers=bearer(key["key"])))

    assert as_owner == {
        owner.account_id: (owner.email, None),
        staff.account_id: (staff.email, staff_phone),
    }
    hidden = {owner.account_id: (None, None), staff.account_id: (None, None)}
    assert as_staff == hidden
    assert as_key == hidden
