"""The committed OpenAPI document matches the app, and the app survives fuzzing against it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from tests.conftest import RUN_PREFIX, TEMPLATE_DB, _blocking, make_settings
from xiaopu import devdb
from xiaopu.app import create_app
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
    schema = create_app(settings).openapi()
    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert "auth-signup" in ids
    assert all(op_id.count("-") >= 1 for op_id in ids)


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
