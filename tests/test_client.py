"""A Python client generated from openapi/openapi.json builds without warnings, imports, and walks
a supplier's and a shopkeeper's first steps and a guest's checkout through the real app."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from openapi_python_client import generate
from openapi_python_client.config import Config, ConfigFile, MetaType
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.catalogue.helpers import product_body
from tests.factories import PASSWORD, make_operator, unique_email
from tests.orders.helpers import ADDRESS
from xiaopu.app import create_app
from xiaopu.config import Settings

PACKAGE = "xiaopu_generated_client"
BASE_URL = "http://testserver"
# What a client's authors would configure: the QR code's images are bytes. No post hooks: the
# generated code is imported, not committed, so it need not be formatted.
GENERATOR = ConfigFile(
    post_hooks=[],
    content_type_overrides={
        "image/png": "application/octet-stream",
        "image/svg+xml": "application/octet-stream",
    },
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, project_root: Path) -> Iterator[ModuleType]:
    """The generated package, imported from a temporary directory (read from the committed
    document, so no network), and forgotten afterwards."""
    out = tmp_path_factory.mktemp("generated")
    config = Config.from_sources(
        GENERATOR,
        MetaType.NONE,
        project_root / "openapi" / "openapi.json",
        "utf-8",
        False,
        out / PACKAGE,
    )
    problems = generate(config=config)
    # Any warning means a piece of the API the client went without (an operation, a response
    # or a model it could not read).
    assert not problems, "\n".join(f"{p.level}: {p.header}: {p.detail}" for p in problems)
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _op(operation_id: str) -> Any:
    """An operation's module: `{tag}-{function}` is `api/{tag}/{tag}_{function}.py`."""
    package = importlib.import_module(f"{PACKAGE}.api")
    module = operation_id.replace("-", "_")
    for tag in pkgutil.iter_modules(package.__path__):
        if module.startswith(f"{tag.name}_"):
            return importlib.import_module(f"{PACKAGE}.api.{tag.name}.{module}")
    raise LookupError(operation_id)


def _model(name: str) -> Any:
    return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


async def _call(operation: str, *args: Any, expect: HTTPStatus, **kwargs: Any) -> Any:
    response = await _op(operation).asyncio_detailed(*args, **kwargs)
    assert response.status_code == expect, response.content
    return response.parsed


async def test_generated_client_journey(
    api: ModuleType,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    transport = httpx.ASGITransport(app=create_app(settings, sessionmaker=sessionmaker))
    http = {"transport": transport}
    guest = api.Client(base_url=BASE_URL, httpx_args=http)

    def signed_in(token: str) -> Any:
        return api.AuthenticatedClient(base_url=BASE_URL, token=token, httpx_args=http)

    # A supplier signs up, and (being an operator too, to keep the test short) is approved.
    SignupRequest = _model("SignupRequest")
    owner_signup = await _call(
        "auth-signup",
        client=guest,
        body=SignupRequest(email=unique_email(), password=PASSWORD),
        expect=HTTPStatus.CREATED,
    )
    owner = signed_in(owner_signup.tokens.access_token)
    await make_operator(session, str(owner_signup.account.id))
    farm = await _call(
        "suppliers-create_supplier",
        client=owner,
        body=_model("SupplierCreate")(name="Client Farm"),
        idempotency_key=str(uuid.uuid4()),
        expect=HTTPStatus.CREATED,
    )
    approved = await _call("operator-approve_supplier", farm.id, client=owner, expect=HTTPStatus.OK)
    assert approved.status.value == "active"
    ref = uuid.uuid4().hex[:10]
    product = await _call(
        "catalogue-create_product",
        farm.id,
        client=owner,
        body=_model("ProductIn").from_dict(product_body(ref)),
        expect=HTTPStatus.CREATED,
    )

    # A shopkeeper signs up, opens a shop, finds the product, carries it and shares it.
    keeper_signup = await _call(
        "auth-signup",
        client=guest,
        body=SignupRequest(email=unique_email(), password=PASSWORD),
        expect=HTTPStatus.CREATED,
    )
    keeper = signed_in(keeper_signup.tokens.access_token)
    me = await _call("auth-me", client=keeper, expect=HTTPStatus.OK)
    assert me.id == keeper_signup.account.id
    # The body is optional, but the generator sends an omitted one as its `Unset` marker.
    shop = await _call(
        "shops-open_shop", client=keeper, body=_model("ShopCreate")(), expect=HTTPStatus.CREATED
    )
    page = await _call(
        "catalogue-browse_catalogue", client=keeper, q=f"Product {ref}", expect=HTTPStatus.OK
    )
    assert [p.id for p in page.items] == [product.id]
    assert page.items[0].variants[0].price_minor == 1000
    await _call(
        "shops-add_product_to_shop",
        client=keeper,
        body=_model("SelectionAdd")(product_id=product.id, markup_bps=1000),
        expect=HTTPStatus.CREATED,
    )
    link = await _call(
        "links-create_link",
        client=keeper,
        body=_model("LinkCreate")(product_id=product.id),
        expect=HTTPStatus.CREATED,
    )
    assert link.url.endswith(f"/s/{link.code}")
    links = await _call("links-list_links", client=keeper, expect=HTTPStatus.OK)
    assert [item.code for item in links.items] == [link.code]
    qr = await _call(
        "links-get_qr_code",
        link.code,
        _model("LinksGetQrCodeKind").PNG,
        client=guest,
        expect=HTTPStatus.OK,
    )
    assert qr.payload.read().startswith(b"\x89PNG")

    # A guest buys it from the shop; a retry under the same key answers the same order.
    public = await _call(
        "shops-list_public_products", shop.slug, client=guest, expect=HTTPStatus.OK
    )
    order_body = _model("CheckoutIn")(
        shop_slug=shop.slug,
        items=[_model("CheckoutItem")(variant_id=public.items[0].variants[0].id, quantity=1)],
        address=_model("Address").from_dict(ADDRESS),
    )
    key = str(uuid.uuid4())
    order = await _call(
        "orders-checkout",
        client=guest,
        body=order_body,
        idempotency_key=key,
        expect=HTTPStatus.CREATED,
    )
    assert order.total_minor == 1100 + order.shipping_minor
    again = await _call(
        "orders-checkout",
        client=guest,
        body=order_body,
        idempotency_key=key,
        expect=HTTPStatus.CREATED,
    )
    assert again.id == order.id

    # Refusals come back as the documented problem+json model.
    missing = await _call(
        "shops-get_public_shop", "no-such-shop", client=guest, expect=HTTPStatus.NOT_FOUND
    )
    assert isinstance(missing, _model("Problem"))
    assert missing.code == "shop_not_found"
