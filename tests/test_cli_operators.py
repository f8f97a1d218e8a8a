"""`xiaopu operator create|disable|list` against a real database, and `xiaopu seed` refusing
outside development."""

from __future__ import annotations

import getpass
from collections.abc import Iterator

import httpx
import pytest
from click.testing import Result
from sqlalchemy import text
from typer.testing import CliRunner

from tests.conftest import TEST_ATTRIBUTION_SECRET, TEST_JWT_SECRET, _blocking, make_settings
from tests.factories import bearer, signup, unique_email
from xiaopu.audit import service as audit
from xiaopu.cli import app
from xiaopu.config import get_settings
from xiaopu.db import create_engine, create_sessionmaker

PASSWORD = "operator-pass-7Qx"


@pytest.fixture
def settings_cache() -> Iterator[None]:
    """The CLI reads settings once per process (get_settings); each invocation here sets its
    own environment, so the cache is cleared around the test."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "XIAOPU_ENV": "test",
        "XIAOPU_DATABASE_URL": database_url,
        "XIAOPU_JWT_SECRET": TEST_JWT_SECRET,
        "XIAOPU_ATTRIBUTION_SECRET": TEST_ATTRIBUTION_SECRET,
        **extra,
    }


def _xiaopu(env: dict[str, str], *args: str, prompt: str | None = None) -> Result:
    """Run the command in a thread: it calls asyncio.run, which must not touch the test loop."""
    get_settings.cache_clear()
    return _blocking(CliRunner().invoke, app, list(args), env=env, input=prompt)


async def _rows(database_url: str, sql: str) -> list[dict[str, object]]:
    engine = create_engine(make_settings(database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            return [dict(r) for r in (await session.execute(text(sql))).mappings()]
    finally:
        await engine.dispose()


async def _chain_ok(database_url: str) -> bool:
    engine = create_engine(make_settings(database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            return (await audit.verify_chain(session)).ok
    finally:
        await engine.dispose()


async def _login(client: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"login": login, "password": password})


@pytest.mark.usefixtures("settings_cache")
async def test_create_list_disable(concurrent_client: httpx.AsyncClient, fresh_db_url: str) -> None:
    client = concurrent_client
    login = unique_email()
    env = _env(fresh_db_url, XIAOPU_OPERATOR_PASSWORD=PASSWORD)

    created = _xiaopu(
        env,
        "operator",
        "create",
        login,
        "--name",
        "Ops Lead",
        "--password-env",
        "XIAOPU_OPERATOR_PASSWORD",
    )
    assert created.exit_code == 0, created.output
    assert f"Created operator {login} (Ops Lead)" in created.output
    assert PASSWORD not in created.output

    signed_in = await _login(client, login, PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    headers = bearer(signed_in.json()["access_token"])
    log = await client.get("/v1/operator/audit", headers=headers)
    assert log.status_code == 200, log.text
    (record,) = log.json()["items"]
    assert record["action"] == "operator.create"
    assert record["operator"] is None
    assert record["actor"] == f"cli:{getpass.getuser()}"
    assert record["object_type"] == "operator"
    assert record["after"]["account_created"] is True

    again = _xiaopu(
        env,
        "operator",
        "create",
        login,
        "--name",
        "x",
        "--password-env",
        "XIAOPU_OPERATOR_PASSWORD",
    )
    assert again.exit_code == 1
    assert "operator_exists" in again.output

    listed = _xiaopu(env, "operator", "list")
    assert listed.exit_code == 0, listed.output
    (line,) = [row for row in listed.output.splitlines() if row.startswith(login)]
    assert line.split()[1:4] == ["Ops", "Lead", "admin"]
    assert line.rstrip().endswith("-")  # not disabled

    disabled = _xiaopu(env, "operator", "disable", login, "--reason", "left the company")
    assert disabled.exit_code == 0, disabled.output
    # Refused at once, with the access token issued before.
    refused = await client.get("/v1/operator/audit", headers=headers)
    assert refused.status_code == 403, refused.text
    (line,) = [row for row in _xiaopu(env, "operator", "list").output.splitlines() if login in row]
    assert not line.rstrip().endswith("-")
    twice = _xiaopu(env, "operator", "disable", login)
    assert twice.exit_code == 1
    assert "operator_already_disabled" in twice.output

    # `create` again enables them.
    enabled = _xiaopu(
        env,
        "operator",
        "create",
        login,
        "--name",
        "x",
        "--password-env",
        "XIAOPU_OPERATOR_PASSWORD",
    )
    assert enabled.exit_code == 0, enabled.output
    assert (await client.get("/v1/operator/audit", headers=headers)).status_code == 200

    records = await _rows(
        fresh_db_url,
        "SELECT action, operator_id, reason, before, after FROM audit_records ORDER BY seq",
    )
    assert [r["action"] for r in records] == [
        "operator.create",
        "operator.disable",
        "operator.enable",
    ]
    assert all(r["operator_id"] is None for r in records)
    assert records[1]["reason"] == "left the company"
    assert records[1]["before"] == {"role": "admin", "disabled_at": None}
    assert records[1]["after"]["disabled_at"] is not None  # type: ignore[index]
    assert await _chain_ok(fresh_db_url)
    verified = _xiaopu(env, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "holds: 3 records" in verified.output
    unknown = _xiaopu(env, "operator", "disable", unique_email())
    assert unknown.exit_code == 1
    assert "operator_not_found" in unknown.output


@pytest.mark.usefixtures("settings_cache")
async def test_an_existing_account_is_promoted_only_with_its_password(
    concurrent_client: httpx.AsyncClient, fresh_db_url: str
) -> None:
    login = unique_email()
    await signup(concurrent_client, email=login, password="their own password 1")
    wrong = _xiaopu(
        _env(fresh_db_url, PW=PASSWORD),
        "operator",
        "create",
        login,
        "--name",
        "Someone",
        "--password-env",
        "PW",
    )
    assert wrong.exit_code == 1
    assert "existing_account_password_mismatch" in wrong.output
    assert await _rows(fresh_db_url, "SELECT * FROM operators") == []
    assert await _rows(fresh_db_url, "SELECT * FROM audit_records") == []

    # Typed at the prompt (twice), as a person would; never echoed.
    right = _xiaopu(
        _env(fresh_db_url),
        "operator",
        "create",
        login,
        "--name",
        "Someone",
        prompt="their own password 1\ntheir own password 1\n",
    )
    assert right.exit_code == 0, right.output
    assert f"Made operator {login}" in right.output
    assert "their own password 1" not in right.output
    (operator,) = await _rows(fresh_db_url, "SELECT role, disabled_at FROM operators")
    assert operator == {"role": "admin", "disabled_at": None}


@pytest.mark.usefixtures("settings_cache")
def test_a_weak_or_missing_password_is_refused_without_showing_it(fresh_db_url: str) -> None:
    weak = _xiaopu(
        _env(fresh_db_url, PW="1234567890"),
        "operator",
        "create",
        "13800138000",
        "--name",
        "Ops",
        "--password-env",
        "PW",
    )
    assert weak.exit_code == 2
    assert "password is too simple" in weak.output
    assert "1234567890" not in weak.output
    missing = _xiaopu(
        _env(fresh_db_url), "operator", "create", "a@example.com", "--name", "Ops",
        "--password-env", "NOT_SET_ANYWHERE",
    )  # fmt: skip
    assert missing.exit_code == 2
    assert "NOT_SET_ANYWHERE is not set" in missing.output


@pytest.mark.usefixtures("settings_cache")
async def test_audit_verify_reports_a_broken_chain(fresh_db_url: str) -> None:
    env = _env(fresh_db_url)
    for _ in range(2):
        created = _xiaopu(
            env | {"PW": PASSWORD},
            "operator", "create", unique_email(), "--name", "Ops", "--password-env", "PW",
        )  # fmt: skip
        assert created.exit_code == 0, created.output
    engine = create_engine(make_settings(fresh_db_url))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await session.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
            await session.execute(text("UPDATE audit_records SET actor = 'cli:nobody'"))
            await session.execute(text("ALTER TABLE audit_records ENABLE TRIGGER USER"))
    finally:
        await engine.dispose()
    broken = _xiaopu(env, "audit", "verify")
    assert broken.exit_code == 1
    assert "Broken at record 1: the record was changed after it was written" in broken.output


PRODUCTION = {
    "XIAOPU_ENV": "production",
    "XIAOPU_JWT_SECRET": TEST_JWT_SECRET,
    "XIAOPU_ATTRIBUTION_SECRET": TEST_ATTRIBUTION_SECRET,
    "XIAOPU_PAYMENT_CALLBACK_SECRET": "whsec_" + "p" * 40,
    "XIAOPU_CARRIER_CALLBACK_SECRET": "whsec_" + "c" * 40,
    "XIAOPU_PUBLIC_BASE_URL": "https://shop.example.com",
    "XIAOPU_ALLOW_SANDBOX_PAYOUTS": "true",
}


@pytest.mark.usefixtures("settings_cache")
@pytest.mark.parametrize("environment", ["test", "production"])
async def test_seed_refuses_outside_development(fresh_db_url: str, environment: str) -> None:
    env = _env(fresh_db_url) | (PRODUCTION if environment == "production" else {})
    result = _xiaopu(env, "seed")
    assert result.exit_code == 1
    assert f"the demo data is for development only (XIAOPU_ENV is {environment})" in result.output
    assert await _rows(fresh_db_url, "SELECT id FROM accounts") == []
