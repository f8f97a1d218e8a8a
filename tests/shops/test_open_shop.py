"""One-click shops: generated names and pinyin slugs, slug rules, levels, and the public page."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import (
    assert_problem,
    assert_validation_error,
    new_actor,
    open_shop,
)
from tests.factories import PASSWORD, bearer
from xiaopu.config import Settings
from xiaopu.shops.service import record_completed_sale


async def test_one_click_with_no_body(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)

    response = await client.post("/v1/shops", headers=keeper.headers)

    assert response.status_code == 201, response.text
    shop = response.json()
    assert shop["name"] == "掌柜的小铺"
    assert shop["level"] == "trial"
    assert shop["completed_sales"] == 0
    assert shop["product_limit"] == 30
    assert shop["product_count"] == 0
    assert len(shop["slug"]) >= 3
    mine = await client.get("/v1/shops/mine", headers=keeper.headers)
    assert mine.status_code == 200, mine.text
    assert mine.json() == shop


async def test_an_empty_body_works_too(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)

    response = await client.post("/v1/shops", json={}, headers=keeper.headers)

    assert response.status_code == 201, response.text


async def test_a_chinese_display_name_gives_a_pinyin_slug(client: httpx.AsyncClient) -> None:
    signed_up = await client.post(
        "/v1/auth/signup",
        json={
            "email": f"xl-{uuid.uuid4().hex[:8]}@example.com",
            "password": PASSWORD,
            "display_name": "小林",
        },
    )
    assert signed_up.status_code == 201, signed_up.text
    headers = bearer(signed_up.json()["tokens"]["access_token"])

    response = await client.post("/v1/shops", headers=headers)

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "小林的小铺"
    assert response.json()["slug"] == "xiao-lin-de-xiao-pu"


async def test_a_chinese_shop_name_gives_a_pinyin_slug_and_clashes_get_a_suffix(
    client: httpx.AsyncClient,
) -> None:
    first = await open_shop(client, (await new_actor(client)).headers, name="茶香小铺")
    second = await open_shop(client, (await new_actor(client)).headers, name="茶香小铺")

    assert first["slug"] == "cha-xiang-xiao-pu"
    assert second["name"] == "茶香小铺"
    assert second["slug"].startswith("cha-xiang-xiao-pu-")
    assert second["slug"] != first["slug"]


async def test_a_custom_slug_is_kept(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)

    shop = await open_shop(client, keeper.headers, name="Tea Corner", slug="tea-corner-88")

    assert shop["slug"] == "tea-corner-88"
    public = await client.get("/v1/shops/tea-corner-88")
    assert public.status_code == 200, public.text
    assert public.json() == {
        "name": "Tea Corner",
        "slug": "tea-corner-88",
        "blurb": None,
        "level": "trial",
    }


async def test_a_second_shop_is_a_conflict(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)
    shop = await open_shop(client, keeper.headers)

    again = await client.post("/v1/shops", json={"name": "Another"}, headers=keeper.headers)

    assert_problem(again, 409, "shop_exists")
    mine = await client.get("/v1/shops/mine", headers=keeper.headers)
    assert mine.json()["id"] == shop["id"]
    assert mine.json()["name"] == shop["name"]


async def test_a_taken_slug_is_a_conflict(client: httpx.AsyncClient) -> None:
    await open_shop(client, (await new_actor(client)).headers, slug="taken-slug")
    keeper = await new_actor(client)

    response = await client.post("/v1/shops", json={"slug": "taken-slug"}, headers=keeper.headers)

    assert_problem(response, 409, "slug_taken")
    assert_problem(
        await client.get("/v1/shops/mine", headers=keeper.headers), 404, "shop_not_found"
    )


async def test_a_bad_slug_is_422(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)

    for slug in ("ab", "Tea-Shop", "-tea", "tea-", "tea_shop", "tea shop", "茶铺", "x" * 49, ""):
        response = await client.post("/v1/shops", json={"slug": slug}, headers=keeper.headers)
        assert_validation_error(response, "body", "slug")

    assert_problem(
        await client.get("/v1/shops/mine", headers=keeper.headers), 404, "shop_not_found"
    )


async def test_bad_names_and_unknown_fields_are_422(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)

    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"level": "standard"}, "level"),
        ({"owner_account_id": str(uuid.uuid4())}, "owner_account_id"),
    ):
        response = await client.post("/v1/shops", json=body, headers=keeper.headers)
        assert_validation_error(response, "body", field)
    assert_problem(
        await client.get("/v1/shops/mine", headers=keeper.headers), 404, "shop_not_found"
    )


async def test_the_slug_mine_is_reserved(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)

    response = await client.post("/v1/shops", json={"slug": "mine"}, headers=keeper.headers)

    assert response.status_code in (409, 422), response.text
    assert response.json()["code"] in ("slug_taken", "validation_error")


async def test_opening_a_shop_needs_a_person(client: httpx.AsyncClient) -> None:
    for call in (client.post("/v1/shops"), client.get("/v1/shops/mine")):
        assert_problem(await call, 401, "unauthenticated")


async def test_rename_and_change_slug(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)
    shop = await open_shop(client, keeper.headers, slug="old-slug")

    response = await client.patch(
        "/v1/shops/mine", json={"name": "新名字", "slug": "new-slug"}, headers=keeper.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["id"] == shop["id"]
    assert response.json()["name"] == "新名字"
    assert response.json()["slug"] == "new-slug"
    assert_problem(await client.get("/v1/shops/old-slug"), 404, "shop_not_found")
    assert (await client.get("/v1/shops/new-slug")).json()["name"] == "新名字"
    same = await client.patch("/v1/shops/mine", json={"slug": "new-slug"}, headers=keeper.headers)
    assert same.status_code == 200, same.text


async def test_update_refuses_a_taken_or_bad_slug(client: httpx.AsyncClient) -> None:
    await open_shop(client, (await new_actor(client)).headers, slug="first-shop")
    keeper = await new_actor(client)
    await open_shop(client, keeper.headers, slug="second-shop")

    taken = await client.patch(
        "/v1/shops/mine", json={"slug": "first-shop"}, headers=keeper.headers
    )
    bad = await client.patch("/v1/shops/mine", json={"slug": "Bad Slug"}, headers=keeper.headers)
    level = await client.patch("/v1/shops/mine", json={"level": "standard"}, headers=keeper.headers)

    assert_problem(taken, 409, "slug_taken")
    assert_validation_error(bad, "body", "slug")
    assert_validation_error(level, "body", "level")
    mine = await client.get("/v1/shops/mine", headers=keeper.headers)
    assert (mine.json()["slug"], mine.json()["level"]) == ("second-shop", "trial")


async def test_without_a_shop_the_mine_routes_are_404(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)
    pid = str(uuid.uuid4())

    for call in (
        client.get("/v1/shops/mine", headers=keeper.headers),
        client.patch("/v1/shops/mine", json={"name": "x"}, headers=keeper.headers),
        client.get("/v1/shops/mine/products", headers=keeper.headers),
        client.post("/v1/shops/mine/products", json={"product_id": pid}, headers=keeper.headers),
        client.patch(f"/v1/shops/mine/products/{pid}", json={"blurb": "x"}, headers=keeper.headers),
        client.delete(f"/v1/shops/mine/products/{pid}", headers=keeper.headers),
    ):
        assert_problem(await call, 404, "shop_not_found")


async def test_five_completed_sales_make_a_shop_standard_without_a_limit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    keeper = await new_actor(client)
    shop = await open_shop(client, keeper.headers)
    shop_id = uuid.UUID(shop["id"])

    for _ in range(4):
        await record_completed_sale(session, settings, shop_id)
    await session.commit()
    four = (await client.get("/v1/shops/mine", headers=keeper.headers)).json()
    assert (four["level"], four["completed_sales"], four["product_limit"]) == ("trial", 4, 30)

    await record_completed_sale(session, settings, shop_id)
    await session.commit()
    five = (await client.get("/v1/shops/mine", headers=keeper.headers)).json()
    assert (five["level"], five["completed_sales"], five["product_limit"]) == ("standard", 5, None)
    public = await client.get(f"/v1/shops/{shop['slug']}")
    assert public.json()["level"] == "standard"

    await record_completed_sale(session, settings, shop_id)
    await session.commit()
    six = (await client.get("/v1/shops/mine", headers=keeper.headers)).json()
    assert (six["level"], six["completed_sales"]) == ("standard", 6)


async def test_public_shop_page(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)
    shop = await open_shop(client, keeper.headers, name="小林的茶铺", slug="xiaolin")

    found = await client.get("/v1/shops/xiaolin")
    missing = await client.get("/v1/shops/no-such-shop")
    bad = await client.get("/v1/shops/NO_SUCH")
    bad_products = await client.get("/v1/shops/NO_SUCH/products")
    missing_products = await client.get("/v1/shops/no-such-shop/products")

    assert found.status_code == 200, found.text
    assert found.json() == {
        "name": "小林的茶铺",
        "slug": "xiaolin",
        "blurb": None,
        "level": "trial",
    }
    assert "id" not in found.json()
    assert shop["slug"] == "xiaolin"
    assert_problem(missing, 404, "shop_not_found")
    assert_validation_error(bad, "path", "slug")
    assert_validation_error(bad_products, "path", "slug")
    assert_problem(missing_products, 404, "shop_not_found")
