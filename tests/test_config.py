"""Settings: secrets have no usable default outside development, and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from xiaopu.config import Environment, Settings


def test_development_has_a_default_secret() -> None:
    settings = Settings(env=Environment.development)
    assert len(settings.jwt_key) >= 32


@pytest.mark.parametrize("env", [Environment.test, Environment.production])
def test_no_secret_outside_development_is_refused(env: Environment) -> None:
    with pytest.raises(ValidationError, match="XIAOPU_JWT_SECRET is required"):
        Settings(env=env, database_url="postgresql://db/x", jwt_secret=None)


def test_short_production_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(env=Environment.production, database_url="postgresql://db/x", jwt_secret="short")


def test_production_needs_a_database_url() -> None:
    with pytest.raises(ValidationError, match="XIAOPU_DATABASE_URL is required"):
        Settings(
            env=Environment.production,
            jwt_secret="x" * 40,
            attribution_secret="y" * 40,
            database_url=None,
        )


def test_no_attribution_secret_outside_development_is_refused() -> None:
    with pytest.raises(ValidationError, match="XIAOPU_ATTRIBUTION_SECRET is required"):
        Settings(env=Environment.production, jwt_secret="x" * 40, database_url="postgresql://d/x")


def test_every_setting_is_in_the_readme(project_root: Path) -> None:
    readme = (project_root / "README.md").read_text()
    documented = set(re.findall(r"`(XIAOPU_[A-Z_]+)`", readme))
    settings = {f"XIAOPU_{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "document these settings in the README"


def test_production_refuses_the_development_callback_secrets() -> None:
    with pytest.raises(ValidationError, match="XIAOPU_PAYMENT_CALLBACK_SECRET"):
        Settings(
            env=Environment.production,
            jwt_secret="x" * 40,
            attribution_secret="y" * 40,
            database_url="postgresql://d/x",
        )
