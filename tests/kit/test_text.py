"""Display names and texts: NFC, trimmed, and no invisible, private-use or unassigned characters."""

from __future__ import annotations

import unicodedata
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from tests.auth.helpers import assert_validation_error
from tests.catalogue.helpers import new_actor, product_body, variant_body
from tests.factories import supplier
from xiaopu.kit.text import DisplayName, MultilineText

names = TypeAdapter(DisplayName)
texts = TypeAdapter(MultilineText)

REFUSED = [
    ("\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("\u200b", "U+200B (ZERO WIDTH SPACE)"),
    ("\ue000", "U+E000 (private use)"),
    ("\u0378", "U+0378 (unassigned)"),
    ("\u2028", "U+2028 (LINE SEPARATOR)"),
    ("\x07", "U+0007 (control)"),
]


@pytest.mark.parametrize(("char", "named"), REFUSED)
def test_a_name_refuses_and_names_the_character(char: str, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        names.validate_python(f"小铺{char}shop")

    assert named in str(caught.value)


@pytest.mark.parametrize(("char", "named"), REFUSED)
def test_a_text_refuses_the_same_characters(char: str, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        texts.validate_python(f"line one\nline {char}two")

    assert named in str(caught.value)


def test_a_name_refuses_line_breaks_and_tabs_a_text_keeps_them() -> None:
    with pytest.raises(ValidationError, match=r"U\+000A"):
        names.validate_python("two\nlines")
    with pytest.raises(ValidationError, match=r"U\+0009"):
        names.validate_python("tab\there")

    assert texts.validate_python("  one\r\ntwo\tcolumns\rthree  ") == "one\ntwo\tcolumns\nthree"


def test_names_are_stored_composed_and_trimmed() -> None:
    decomposed = unicodedata.normalize("NFD", "Café Zoë")
    assert len(decomposed) == 10

    name = names.validate_python(f"  {decomposed} ")

    assert name == "Café Zoë"
    assert unicodedata.is_normalized("NFC", name)


@pytest.mark.parametrize(
    "name", ["小林的小铺", "云南普洱茶饼", "張記 · 茶", "Tea & Co.", "🍵 小铺"]
)
def test_ordinary_names_pass_unchanged(name: str) -> None:
    assert names.validate_python(name) == name


def test_a_character_that_nfc_splits_is_refused_rather_than_outgrowing_the_limit() -> None:
    # U+0958 is a composition exclusion: NFC turns it into two characters.
    with pytest.raises(ValidationError, match=r"U\+0958 .* becomes two characters"):
        names.validate_python("\u0958")


# Through the API: every kind of display name refuses them with a 422 that says which.


def assert_refused(response: httpx.Response, code_point: str, *loc: str | int) -> None:
    body = assert_validation_error(response, *loc)
    messages = [e["msg"] for e in body["errors"] if tuple(e["loc"]) == tuple(loc)]
    assert any(code_point in m for m in messages), messages


async def test_a_shop_name_with_a_bidi_override_is_422(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)

    response = await client.post(
        "/v1/shops", json={"name": "小林\u202egnp.的小铺"}, headers=keeper.headers
    )

    assert_refused(response, "U+202E", "body", "name")


async def test_a_supplier_name_with_a_zero_width_space_is_422(client: httpx.AsyncClient) -> None:
    owner = await new_actor(client)

    response = await client.post(
        "/v1/suppliers", json={"name": "Yun\u200bnan Tea"}, headers=owner.headers
    )

    assert_refused(response, "U+200B", "body", "name")


async def test_a_persons_display_name_with_an_unassigned_code_point_is_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/auth/signup",
        json={
            "email": "x@example.com",
            "password": "correct horse battery",
            "display_name": "A\u0378",
        },
    )

    assert_refused(response, "U+0378", "body", "display_name")


async def _supplier(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    owner = await new_actor(client)
    return await supplier(client, owner.headers)


@pytest.mark.parametrize(
    ("field", "value", "code_point"),
    [
        ("title", "Pu'er \ue000 cake", "U+E000"),
        ("brand", "\u202eBrand", "U+202E"),
        ("description", "Good tea.\n\u200bHidden", "U+200B"),
    ],
)
async def test_product_fields_refuse_invisible_characters(
    client: httpx.AsyncClient, field: str, value: str, code_point: str
) -> None:
    supplier_id, owner = await _supplier(client)

    response = await client.post(
        f"/v1/suppliers/{supplier_id}/products",
        json=product_body("P1", **{field: value}),
        headers=owner,
    )

    assert_refused(response, code_point, "body", field)


async def test_variant_option_names_and_values_refuse_them_too(client: httpx.AsyncClient) -> None:
    supplier_id, owner = await _supplier(client)
    variant = variant_body("P1-A", options={"size": "L\u200b"})

    response = await client.post(
        f"/v1/suppliers/{supplier_id}/products",
        json=product_body("P1", variants=[variant]),
        headers=owner,
    )

    body = assert_validation_error(response, "body", "variants", 0, "options", "size")
    assert "U+200B" in str(body["errors"])


async def test_a_product_title_sent_decomposed_is_stored_composed(
    client: httpx.AsyncClient,
) -> None:
    supplier_id, owner = await _supplier(client)
    title = unicodedata.normalize("NFD", "Café au lait ") + "云南普洱茶饼"
    description = unicodedata.normalize("NFD", "Crème brûlée.\n\nSecond paragraph.")

    response = await client.post(
        f"/v1/suppliers/{supplier_id}/products",
        json=product_body("P1", title=title, description=description),
        headers=owner,
    )

    assert response.status_code == 201, response.text
    stored: dict[str, Any] = (
        await client.get(
            f"/v1/suppliers/{supplier_id}/products/{response.json()['id']}", headers=owner
        )
    ).json()
    assert stored["title"] == "Café au lait 云南普洱茶饼"
    assert stored["description"] == "Crème brûlée.\n\nSecond paragraph."


async def test_a_chinese_shop_name_passes(client: httpx.AsyncClient) -> None:
    keeper = await new_actor(client)

    response = await client.post("/v1/shops", json={"name": "小林的小铺"}, headers=keeper.headers)

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "小林的小铺"
