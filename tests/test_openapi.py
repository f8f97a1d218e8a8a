"""The committed OpenAPI document matches the app, and the app survives fuzzing against it."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import APIRouter
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from tests.conftest import RUN_PREFIX, TEMPLATE_DB, _blocking, make_settings
from xiaopu import devdb
from xiaopu.app import api_routes, create_app
from xiaopu.auth.passwords import hash_password
from xiaopu.auth.tokens import issue_access_token
from xiaopu.cli import render_openapi
from xiaopu.config import Settings
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.models import Account, MemberRole, Supplier, SupplierMember, SupplierStatus

FUZZ_DB = f"{RUN_PREFIX}_fuzz"


def test_committed_openapi_matches_the_app(settings: Settings, project_root: Path) -> None:
    committed = (project_root / "openapi" / "openapi.json").read_text()
    current = render_openapi(create_app(settings).openapi())
    assert committed == current, "openapi/openapi.json is stale: run `make openapi`"


def test_operation_ids_are_tag_and_function(settings: Settings) -> None:
    """Every operation has one tag and an id `{tag}-{function}`, unique, for generated clients
    (which name their modules and methods after them)."""
    schema = create_app(settings).openapi()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    assert "auth-signup" in ids
    for operation in operations:
        (tag,) = operation["tags"]
        assert re.fullmatch(rf"{re.escape(tag)}-[a-z][a-z0-9_]*", operation["operationId"])


def test_a_route_must_name_its_operation_id(settings: Settings) -> None:
    """Ids are chosen, not derived from function names: a route without one is refused."""
    app = create_app(settings)

    async def unnamed() -> dict[str, str]:
        return {}

    with pytest.raises(TypeError, match="explicit operation_id"):
        app.add_api_route("/unnamed", unnamed, tags=["test"])
    router = APIRouter(tags=["test"])
    router.add_api_route("/unnamed", unnamed)
    with pytest.raises(TypeError, match='operation_id="test-unnamed"'):
        app.include_router(router)
    named = APIRouter(tags=["test"])
    named.add_api_route("/named", unnamed, operation_id="test-named")
    app.include_router(named)
    assert "test-named" in [route.operation_id for route in api_routes(app.routes)]


def test_tags_name_what_the_operations_are_about(settings: Settings) -> None:
    schema = create_app(settings).openapi()
    tags = {
        (method.upper(), path): operation["tags"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    assert tags["POST", "/v1/carriers/callbacks"] == ["carriers"]
    assert tags["POST", "/v1/payments/{provider}/callbacks"] == ["payments"]
    for (_, path), operation_tags in tags.items():
        if "/api-keys" in path:
            assert operation_tags == ["api-keys"], path
        if path.startswith("/v1/auth/"):
            assert operation_tags == ["auth"], path
        if path.startswith("/v1/operator/"):
            assert operation_tags == ["operator"], path


def test_schema_names_read_well(settings: Settings) -> None:
    """`ApiKeyPage`, not `Page_ApiKeyOut_`: names generated clients turn into class names."""
    schema = create_app(settings).openapi()
    names = schema["components"]["schemas"]
    assert [n for n in names if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", n)] == []
    assert "ApiKeyPage" in names
    page = schema["paths"]["/v1/suppliers/{supplier_id}/api-keys"]["get"]
    ok = page["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ApiKeyPage"}
    refs = re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schema))
    assert set(refs) <= set(names)


async def _seed_caller(fuzz_settings: Settings) -> dict[str, str]:
    engine = create_engine(fuzz_settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            account = Account(
                email="fuzz@example.com", password_hash=hash_password("fuzz-pass-123")
            )
            supplier = Supplier(name="Fuzz Farm", status=SupplierStatus.active)
            session.add_all([account, supplier])
            await session.flush()
            session.add(
                SupplierMember(
                    supplier_id=supplier.id, account_id=account.id, role=MemberRole.owner
                )
            )
    finally:
        await engine.dispose()
    token, _ = issue_access_token(fuzz_settings, account.id, uuid.uuid4())
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def fuzz_target(db_server: str, template_url: str) -> Iterator[tuple[Any, dict[str, str]]]:
    _blocking(
        asyncio.run,
        devdb.create_database(db_server, FUZZ_DB, template=TEMPLATE_DB, replace=True),
    )
    fuzz_settings = make_settings(devdb.with_database(db_server, FUZZ_DB))
    headers = _blocking(asyncio.run, _seed_caller(fuzz_settings))
    # No sessionmaker: the app's lifespan builds its engine on schemathesis' own event loop.
    yield create_app(fuzz_settings), headers
    _blocking(asyncio.run, devdb.drop_database(db_server, FUZZ_DB))


# The document needs no database; the calls go to the fixture's app, on its own database.
schema = schemathesis.openapi.from_dict(
    create_app(make_settings("postgresql://unused/unused")).openapi()
)


@schema.parametrize()
@seed(20261122)
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_fuzz(case: Any, fuzz_target: tuple[Any, dict[str, str]]) -> None:
    """Zero 5xx, and every answer fits its documented schema and media type."""
    app, headers = fuzz_target
    case.call_and_validate(
        app=app,
        headers=headers,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            negative_data_rejection,
        ],
    )


def test_openapi_document_is_valid_json(project_root: Path) -> None:
    document = json.loads((project_root / "openapi" / "openapi.json").read_text())
    assert document["openapi"].startswith("3.")
    assert "Problem" in document["components"]["schemas"]
