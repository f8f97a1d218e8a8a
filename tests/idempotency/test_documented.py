"""Every operation that refuses a request without an Idempotency-Key documents the header as
required, and every operation that documents it so refuses such a request."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalogue.helpers import active_supplier, open_shop, operator
from tests.organisations.helpers import create_organisation
from xiaopu.app import api_routes, create_app
from xiaopu.config import Settings
from xiaopu.idempotency.service import HEADER, requires_key


def _documents_required_key(operation: dict[str, Any]) -> bool:
    return any(
        p["in"] == "header" and p["name"] == HEADER and p.get("required", False)
        for p in operation.get("parameters", [])
    )


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


def test_routes_that_require_the_key_document_it(settings: Settings) -> None:
    """The marker in code (the route depends on RequiredIdempotency or RequiredKey) and the
    document agree, route by route."""
    app = create_app(settings)
    schema = app.openapi()
    marked = set()
    for route in api_routes(app.routes):
        if not route.include_in_schema:  # the storefront's pages: forms, not the API
            continue
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            assert _documents_required_key(operation) == requires_key(route), route.path
            if requires_key(route):
                marked.add((method, route.path_format))
    assert ("POST", "/v1/orders") in marked  # checkout, answered ahead of the router
    assert ("POST", "/v1/shops/mine/withdrawals") in marked


def _path_value(parameter: dict[str, Any], supplier_id: str, organisation_id: str) -> str:
    """A value each path parameter accepts: the caller's own supplier or organisation, or an id
    of nothing."""
    schema = parameter["schema"]
    if parameter["name"] == "supplier_id":
        return supplier_id
    if parameter["name"] == "organisation_id":
        return organisation_id
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    return "sandbox"  # a provider's name, a slug, a link's code: matches their patterns


async def test_every_operation_without_the_key_answers_as_documented(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Each operation is called without the key by a caller allowed to call it (an operator
    who owns an active supplier and a shop and administers an organisation), so that the key is
    what decides: those that answer 400 `idempotency_key_missing` are exactly those that
    document the key required."""
    caller = await operator(client, session)
    supplier_id = await active_supplier(client, caller.headers, caller.headers)
    await open_shop(client, caller.headers)
    organisation_id = (await create_organisation(client, caller.headers, caller))["id"]
    schema = create_app(settings).openapi()
    disagreements = []
    required = 0
    for method, path, operation in _operations(schema):
        values = {
            p["name"]: _path_value(p, supplier_id, organisation_id)
            for p in operation.get("parameters", [])
            if p["in"] == "path"
        }
        response = await client.request(method, path.format(**values), headers=caller.headers)
        refused = (
            response.status_code == 400 and response.json().get("code") == "idempotency_key_missing"
        )
        documented = _documents_required_key(operation)
        required += documented
        if refused != documented:
            disagreements.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
    assert disagreements == []
    assert required >= 14  # today's count: the test cannot pass by finding none
