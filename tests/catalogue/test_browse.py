"""The catalogue shopkeepers browse: Chinese and English search, categories, sorts, cursors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import (
    active_supplier,
    assert_problem,
    assert_validation_error,
    browse,
    browse_ids,
    create_product,
    operator,
    product_body,
    variant_body,
)
from tests.factories import supplier


@dataclass
class World:
    headers: dict[str, str]
    supplier_id: str
    ids: dict[str, str]  # ref -> product id, in creation order


PRODUCTS: list[dict[str, Any]] = [
    product_body(
        "PUER",
        title="云南普洱茶饼 Pu-erh tea cake",
        brand="云南茶园",
        commission_bps=1500,
        variants=[variant_body("PUER-1", price_minor=12800)],
    ),
    product_body(
        "DIANHONG",
        title="滇红金芽红茶 Dianhong black tea",
        commission_bps=1200,
        variants=[variant_body("DH-1", price_minor=8800)],
    ),
    product_body(
        "FLOWER",
        title="云南鲜花饼 Rose flower cakes",
        category_id="food.specialty",
        commission_bps=1000,
        variants=[
            variant_body("FC-10", price_minor=4990, commission_bps=3000),
            variant_body("FC-20", price_minor=8990, stock=0),
        ],
    ),
    product_body(
        "CREAM",
        title="保湿面霜 Moisturising face cream",
        category_id="beauty.skincare",
        commission_bps=500,
        variants=[variant_body("CR-1", price_minor=20000)],
    ),
    # Ties on commission and price, to exercise the keyset tie-break.
    *[
        product_body(
            f"SNACK{i}",
            title=f"坚果零食 snack pack {i}",
            category_id="food.snacks",
            commission_bps=1200,
            variants=[variant_body(f"SN-{i}", price_minor=8800)],
        )
        for i in range(3)
    ],
]
HIDDEN: list[dict[str, Any]] = [
    product_body("DRAFT", title="普洱 draft tea", status="draft"),
    product_body("ARCHIVED", title="普洱 archived tea", status="archived"),
]


async def build(client: httpx.AsyncClient, session: AsyncSession) -> World:
    op = await operator(client, session)  # operator, supplier owner and shopkeeper at once
    supplier_id = await active_supplier(client, op.headers, op.headers)
    ids = {}
    for body in PRODUCTS + HIDDEN:
        ids[body["ref"]] = (await create_product(client, supplier_id, op.headers, body))["id"]
    # A pending supplier's active product is not in the catalogue either.
    pending, _ = await supplier(client, op.headers)
    await create_product(client, pending, op.headers, product_body("PENDING", title="普洱 pending"))
    return World(op.headers, supplier_id, ids)


def refs(world: World, ids: list[str]) -> list[str]:
    by_id = {v: k for k, v in world.ids.items()}
    return [by_id[i] for i in ids]


async def search(world: World, client: httpx.AsyncClient, **params: Any) -> set[str]:
    return set(refs(world, await browse_ids(client, world.headers, limit=100, **params)))


async def walk(world: World, client: httpx.AsyncClient, **params: Any) -> list[str]:
    """Every page at limit=2, following next_cursor."""
    seen: list[str] = []
    cursor = None
    while True:
        query = params | {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await browse(client, world.headers, **query)
        assert len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return refs(world, seen)


async def test_search_in_chinese_and_english(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await build(client, session)

    assert await search(world, client, q="普洱") == {"PUER"}
    assert await search(world, client, q="普洱茶") == {"PUER"}
    assert await search(world, client, q="茶") == {"PUER", "DIANHONG"}
    assert await search(world, client, q="饼") == {"PUER", "FLOWER"}
    assert await search(world, client, q="云南") == {"PUER", "FLOWER"}
    assert await search(world, client, q="茶园") == {"PUER"}  # the brand is searched too
    assert await search(world, client, q="tea") == {"PUER", "DIANHONG"}
    assert await search(world, client, q="Dian") == {"DIANHONG"}
    assert await search(world, client, q="cak") == {"PUER", "FLOWER"}
    assert await search(world, client, q="tea cake") == {"PUER"}
    assert await search(world, client, q="红茶 black") == {"DIANHONG"}
    assert await search(world, client, q="咖啡") == set()
    assert await search(world, client, q="云茶") == set()  # not neighbours in any title
    assert await search(world, client, q="coffee") == set()


async def test_search_without_searchable_characters_is_422(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)

    response = await client.get(
        "/v1/catalogue/products", params={"q": "!!! ???"}, headers=op.headers
    )

    assert_problem(response, 422, "invalid_search")


async def test_a_renamed_product_is_found_by_its_new_title(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    supplier_id = await active_supplier(client, op.headers, op.headers)
    product = await create_product(
        client, supplier_id, op.headers, product_body("P1", title="普洱茶")
    )

    renamed = await client.patch(
        f"/v1/suppliers/{supplier_id}/products/{product['id']}",
        json={"title": "安化黑茶 dark tea"},
        headers=op.headers,
    )

    assert renamed.status_code == 200, renamed.text
    assert await browse_ids(client, op.headers, q="普洱") == []
    assert await browse_ids(client, op.headers, q="黑茶") == [product["id"]]
    assert await browse_ids(client, op.headers, q="dark") == [product["id"]]


async def test_category_filter_includes_subcategories(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await build(client, session)
    food = {"PUER", "DIANHONG", "FLOWER", "SNACK0", "SNACK1", "SNACK2"}

    assert await search(world, client, category="food") == food
    assert await search(world, client, category="food.tea") == {"PUER", "DIANHONG"}
    assert await search(world, client, category="beauty") == {"CREAM"}
    assert await search(world, client, category="foo") == set()
    assert await search(world, client, category="food.te") == set()
    assert await search(world, client, category="food", q="饼") == {"PUER", "FLOWER"}


async def test_category_filter_treats_wildcards_literally(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await build(client, session)

    assert await search(world, client, category="%") == set()
    assert await search(world, client, category="f_od") == set()


async def test_only_active_products_of_active_suppliers_are_listed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await build(client, session)

    listed = await search(world, client)

    assert listed == {p["ref"] for p in PRODUCTS}
    archived = await client.patch(
        f"/v1/suppliers/{world.supplier_id}/products/{world.ids['CREAM']}",
        json={"status": "archived"},
        headers=world.headers,
    )
    assert archived.status_code == 200, archived.text
    assert "CREAM" not in await search(world, client)
    drafted = await client.patch(
        f"/v1/suppliers/{world.supplier_id}/products/{world.ids['DRAFT']}",
        json={"status": "active"},
        headers=world.headers,
    )
    assert drafted.status_code == 200, drafted.text
    assert "DRAFT" in await search(world, client)


async def test_catalogue_items_carry_commission_price_and_stock(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await build(client, session)

    page = await browse(client, world.headers, q="鲜花饼")

    (item,) = page["items"]
    assert item["supplier_id"] == world.supplier_id
    assert item["commission_bps"] == 1000
    assert item["max_commission_bps"] == 3000
    assert item["min_price_minor"] == 4990
    variants = {v["sku"]: v for v in item["variants"]}
    assert variants["FC-10"]["commission_bps"] == 3000
    assert variants["FC-20"]["commission_bps"] == 1000  # the product's rate
    assert variants["FC-10"]["in_stock"] is True
    assert variants["FC-20"]["in_stock"] is False
    assert "stock" not in variants["FC-10"]


async def test_sorts(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await build(client, session)

    by_commission = refs(world, await browse_ids(client, world.headers, sort="commission"))
    by_price = refs(world, await browse_ids(client, world.headers, sort="price"))
    newest = refs(world, await browse_ids(client, world.headers, sort="newest"))
    default = refs(world, await browse_ids(client, world.headers))

    snacks_newest_first = ["SNACK2", "SNACK1", "SNACK0"]
    # Ties (equal commission or price) come newest first.
    assert by_commission == ["FLOWER", "PUER", *snacks_newest_first, "DIANHONG", "CREAM"]
    assert by_price == ["FLOWER", *snacks_newest_first, "DIANHONG", "PUER", "CREAM"]
    assert newest == [p["ref"] for p in reversed(PRODUCTS)]
    assert default == newest


async def test_commission_sort_follows_a_changed_rate(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await build(client, session)

    response = await client.patch(
        f"/v1/suppliers/{world.supplier_id}/products/{world.ids['CREAM']}",
        json={"commission_bps": 5000},
        headers=world.headers,
    )

    assert response.status_code == 200, response.text
    first = (await browse(client, world.headers, sort="commission", limit=1))["items"][0]
    assert first["id"] == world.ids["CREAM"]
    assert first["max_commission_bps"] == 5000


async def test_cursor_pagination_walks_every_result_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await build(client, session)

    for sort in ("commission", "price", "newest"):
        walked = await walk(world, client, sort=sort)
        assert len(walked) == len(set(walked)) == len(PRODUCTS), sort
        everything = await browse_ids(client, world.headers, sort=sort, limit=100)
        assert walked == refs(world, everything), sort


async def test_cursor_pagination_with_a_search(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await build(client, session)

    walked = await walk(world, client, q="snack", sort="price")

    assert walked == ["SNACK2", "SNACK1", "SNACK0"]


async def test_browse_validates_its_parameters(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    op = await operator(client, session)
    url = "/v1/catalogue/products"

    for params, loc in (
        ({"sort": "popularity"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"q": "茶" * 101}, "q"),
    ):
        response = await client.get(url, params=params, headers=op.headers)
        assert_validation_error(response, "query", loc)
    for cursor in ("not-a-cursor", "WyJ4Il0"):  # garbage, and ["x"]
        response = await client.get(
            url, params={"cursor": cursor, "sort": "commission"}, headers=op.headers
        )
        assert_problem(response, 400, "invalid_cursor")


async def test_browsing_needs_a_signed_in_person(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/catalogue/products")

    assert_problem(response, 401, "unauthenticated")


async def test_categories_are_public_and_form_a_tree(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/catalogue/categories")

    assert response.status_code == 200, response.text
    categories = {c["id"]: c for c in response.json()}
    assert categories["food"]["parent_id"] is None
    assert categories["food.tea"] == {
        "id": "food.tea",
        "parent_id": "food",
        "name_zh": "茶叶",
        "name_en": "Tea",
    }
    for category in categories.values():
        assert category["parent_id"] is None or category["parent_id"] in categories
