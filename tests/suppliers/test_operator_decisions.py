"""Operators approve, reject and suspend suppliers; suspension takes products off sale at once."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.auth.helpers import app_client
from tests.catalogue.helpers import (
    active_supplier,
    add_to_shop,
    assert_problem,
    assert_validation_error,
    browse_ids,
    create_product,
    new_actor,
    open_shop,
    operator,
    product_body,
    public_ids,
)
from tests.conftest import make_settings
from tests.factories import supplier
from xiaopu.app import create_app

OPS = "/v1/operator/suppliers"


async def decide(
    client: httpx.AsyncClient,
    supplier_id: str,
    action: str,
    headers: dict[str, str],
    reason: str | None = "Documents do not match",
) -> httpx.Response:
    body = None if action == "approve" or reason is None else {"reason": reason}
    return await client.post(f"{OPS}/{supplier_id}/{action}", json=body, headers=headers)


async def status_of(client: httpx.AsyncClient, supplier_id: str, owner: dict[str, str]) -> str:
    response = await client.get(f"/v1/suppliers/{supplier_id}", headers=owner)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def test_non_operators_get_403_on_every_operator_route(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await supplier(client)

    calls = [
        client.get(OPS, headers=owner),
        client.post(f"{OPS}/{supplier_id}/approve", headers=owner),
        client.post(f"{OPS}/{supplier_id}/reject", json={"reason": "no"}, headers=owner),
        client.post(f"{OPS}/{supplier_id}/suspend", json={"reason": "no"}, headers=owner),
    ]
    for call in calls:
        assert_problem(await call, 403, "forbidden")

    assert await status_of(client, supplier_id, owner) == "pending"


async def test_operator_routes_need_credentials(client: httpx.AsyncClient) -> None:
    supplier_id = uuid.uuid4()

    for call in (
        client.get(OPS),
        client.post(f"{OPS}/{supplier_id}/approve"),
        client.post(f"{OPS}/{supplier_id}/reject", json={"reason": "no"}),
        client.post(f"{OPS}/{supplier_id}/suspend", json={"reason": "no"}),
    ):
        assert_problem(await call, 401, "unauthenticated")


async def test_operator_lists_suppliers_filtered_by_status(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    pending, _ = await supplier(client, op.headers)
    active = await active_supplier(client, op.headers, op.headers)

    everyone = await client.get(OPS, headers=op.headers)
    only_pending = await client.get(OPS, params={"status": "pending"}, headers=op.headers)
    only_active = await client.get(OPS, params={"status": "active"}, headers=op.headers)
    bad = await client.get(OPS, params={"status": "sleeping"}, headers=op.headers)

    assert everyone.status_code == 200, everyone.text
    assert {pending, active} <= {s["id"] for s in everyone.json()["items"]}
    assert {s["id"] for s in only_pending.json()["items"]} == {pending}
    assert {s["id"] for s in only_active.json()["items"]} == {active}
    assert_validation_error(bad, "query", "status")


async def test_operator_list_pages_without_duplicates(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    created = {(await supplier(client, op.headers))[0] for _ in range(5)}

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "status": "pending"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(OPS, params=params, headers=op.headers)).json()
        assert len(page["items"]) <= 2
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen))
    assert set(seen) == created


async def test_approve_makes_a_pending_supplier_active(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    supplier_id, _ = await supplier(client, op.headers)

    response = await decide(client, supplier_id, "approve", op.headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    assert response.json()["status_reason"] is None


async def test_reject_needs_a_reason_and_records_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    supplier_id, _ = await supplier(client, op.headers)

    missing = await client.post(f"{OPS}/{supplier_id}/reject", headers=op.headers)
    empty = await client.post(f"{OPS}/{supplier_id}/reject", json={}, headers=op.headers)
    blank = await decide(client, supplier_id, "reject", op.headers, reason="   ")
    rejected = await decide(client, supplier_id, "reject", op.headers, reason="Licence expired")

    assert_problem(missing, 422, "validation_error")
    assert_validation_error(empty, "body", "reason")
    assert_validation_error(blank, "body", "reason")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["status_reason"] == "Licence expired"
    assert await status_of(client, supplier_id, op.headers) == "rejected"


async def test_suspend_needs_a_reason(client: httpx.AsyncClient, session: AsyncSession) -> None:
    op = await operator(client, session)
    supplier_id = await active_supplier(client, op.headers, op.headers)

    missing = await client.post(f"{OPS}/{supplier_id}/suspend", json={}, headers=op.headers)
    suspended = await decide(client, supplier_id, "suspend", op.headers, reason="Fake goods")

    assert_validation_error(missing, "body", "reason")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["status_reason"] == "Fake goods"


async def test_approving_again_clears_the_reason(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    rejected, _ = await supplier(client, op.headers)
    suspended = await active_supplier(client, op.headers, op.headers)
    assert (await decide(client, rejected, "reject", op.headers)).status_code == 200
    assert (await decide(client, suspended, "suspend", op.headers)).status_code == 200

    for supplier_id in (rejected, suspended):
        response = await decide(client, supplier_id, "approve", op.headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "active"
        assert response.json()["status_reason"] is None


async def test_invalid_transitions_are_409(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    pending, _ = await supplier(client, op.headers)
    active = await active_supplier(client, op.headers, op.headers)
    rejected, _ = await supplier(client, op.headers)
    assert (await decide(client, rejected, "reject", op.headers)).status_code == 200
    suspended = await active_supplier(client, op.headers, op.headers)
    assert (await decide(client, suspended, "suspend", op.headers)).status_code == 200

    invalid = [
        (pending, "suspend", "pending"),
        (active, "approve", "active"),
        (active, "reject", "active"),
        (rejected, "reject", "rejected"),
        (rejected, "suspend", "rejected"),
        (suspended, "suspend", "suspended"),
        (suspended, "reject", "suspended"),
    ]
    for supplier_id, action, current in invalid:
        response = await decide(client, supplier_id, action, op.headers)
        body = assert_problem(response, 409, "invalid_supplier_transition")
        assert body["current_status"] == current, (action, body)
        assert await status_of(client, supplier_id, op.headers) == current


async def test_deciding_on_an_unknown_supplier_is_404(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)

    for action in ("approve", "reject", "suspend"):
        response = await decide(client, str(uuid.uuid4()), action, op.headers)
        assert_problem(response, 404, "supplier_not_found")


async def test_auto_approve_setting_starts_suppliers_active(
    main_db_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    settings = make_settings(main_db_url, supplier_auto_approve=True)
    app = create_app(settings, sessionmaker=sessionmaker)
    async with app_client(app) as client:
        owner = await new_actor(client)
        response = await client.post(
            "/v1/suppliers", json={"name": "Fast Farm"}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "active"
        assert await status_of(client, response.json()["id"], owner.headers) == "active"


async def test_without_auto_approve_suppliers_start_pending(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The pending supplier's active products are not in the catalogue until approval."""
    op = await operator(client, session)
    supplier_id, _ = await supplier(client, op.headers)
    product = await create_product(client, supplier_id, op.headers, product_body("P1"))

    assert await status_of(client, supplier_id, op.headers) == "pending"
    assert await browse_ids(client, op.headers) == []
    assert (await decide(client, supplier_id, "approve", op.headers)).status_code == 200
    assert await browse_ids(client, op.headers) == [product["id"]]


async def test_suspension_takes_products_off_sale_and_approval_brings_them_back(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)  # also the supplier's owner and the shopkeeper
    supplier_id = await active_supplier(client, op.headers, op.headers)
    other_supplier = await active_supplier(client, op.headers, op.headers)
    product = await create_product(client, supplier_id, op.headers, product_body("TEA"))
    other = await create_product(client, other_supplier, op.headers, product_body("RICE"))
    shop = await open_shop(client, op.headers)
    for pid in (product["id"], other["id"]):
        assert (await add_to_shop(client, op.headers, pid)).status_code == 201

    async def visible() -> tuple[set[str], set[str], dict[str, bool]]:
        catalogue = set(await browse_ids(client, op.headers))
        public = set(await public_ids(client, shop["slug"]))
        mine = await client.get("/v1/shops/mine/products", headers=op.headers)
        on_sale = {p["product_id"]: p["on_sale"] for p in mine.json()["items"]}
        return catalogue, public, on_sale

    both = {product["id"], other["id"]}
    assert await visible() == (both, both, {product["id"]: True, other["id"]: True})

    suspended = await decide(client, supplier_id, "suspend", op.headers)
    assert suspended.status_code == 200, suspended.text
    assert await visible() == (
        {other["id"]},
        {other["id"]},
        {product["id"]: False, other["id"]: True},
    )
    searched = await browse_ids(client, op.headers, q="product")
    assert searched == [other["id"]]
    # A suspended supplier's product cannot be added to another shop either.
    keeper = await new_actor(client)
    await open_shop(client, keeper.headers)
    refused = await add_to_shop(client, keeper.headers, product["id"])
    assert_problem(refused, 404, "product_not_found")

    approved = await decide(client, supplier_id, "approve", op.headers)
    assert approved.status_code == 200, approved.text
    assert await visible() == (both, both, {product["id"]: True, other["id"]: True})
