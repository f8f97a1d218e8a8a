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


def _production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": Environment.production,
        "jwt_secret": "x" * 40,
        "attribution_secret": "y" * 40,
        "database_url": "postgresql://d/x",
        "payment_callback_secret": "whsec_" + "p" * 40,
        "carrier_callback_secret": "whsec_" + "c" * 40,
        "public_base_url": "https://shop.example.com",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_production_needs_a_long_private_attribution_secret() -> None:
    with pytest.raises(ValidationError, match="XIAOPU_ATTRIBUTION_SECRET must be a private"):
        _production(allow_sandbox_payouts=True, attribution_secret="")
    with pytest.raises(ValidationError, match="XIAOPU_ATTRIBUTION_SECRET must be a private"):
        _production(allow_sandbox_payouts=True, attribution_secret="short")


@pytest.mark.parametrize(
    "secret", ["", "whsec_", "whsec_not base64!", "whsec_" + "c" * 8, "c" * 40]
)
def test_production_needs_standard_webhooks_callback_secrets(secret: str) -> None:
    with pytest.raises(ValidationError, match="XIAOPU_CARRIER_CALLBACK_SECRET must be whsec_"):
        _production(allow_sandbox_payouts=True, carrier_callback_secret=secret)


def test_production_needs_its_public_base_url() -> None:
    values = {"allow_sandbox_payouts": True}
    settings = _production(**values)
    assert settings.public_base_url == "https://shop.example.com"
    with pytest.raises(ValidationError, match="XIAOPU_PUBLIC_BASE_URL is required"):
        Settings(**{**settings.model_dump(exclude={"public_base_url"}), **values})


def test_production_refuses_the_sandbox_payout_provider() -> None:
    with pytest.raises(ValidationError, match="XIAOPU_ALLOW_SANDBOX_PAYOUTS"):
        _production()
    with pytest.raises(ValidationError, match="XIAOPU_ALLOW_SANDBOX_PAYOUTS"):
        _production(payout_provider="sandbox", allow_sandbox_payouts=False)


def test_production_runs_the_sandbox_payout_provider_only_when_allowed() -> None:
    settings = _production(allow_sandbox_payouts=True)
    assert (settings.payout_provider, settings.allow_sandbox_payouts) == ("sandbox", True)


@pytest.mark.parametrize("env", [Environment.development, Environment.test])
def test_development_and_test_pay_out_with_the_sandbox(env: Environment) -> None:
    settings = Settings(env=env, jwt_secret="x" * 40, attribution_secret="y" * 40)
    assert (settings.payout_provider, settings.allow_sandbox_payouts) == ("sandbox", False)


def test_an_unknown_payout_provider_is_refused() -> None:
    with pytest.raises(ValidationError, match="payout_provider"):
        Settings(env=Environment.development, payout_provider="paypal")  # type: ignore[arg-type]


def test_the_payout_crash_step_is_refused_outside_tests() -> None:
    with pytest.raises(ValidationError, match="XIAOPU_PAYOUT_CRASH_AT is for tests only"):
        Settings(env=Environment.development, payout_crash_at="claimed")
    with pytest.raises(ValidationError, match="XIAOPU_PAYOUT_CRASH_AT is for tests only"):
        _production(allow_sandbox_payouts=True, payout_crash_at="claimed")
    test = Settings(
        env=Environment.test,
        jwt_secret="x" * 40,
        attribution_secret="y" * 40,
        payout_crash_at="called",
    )
    assert test.payout_crash_at == "called"


def test_payout_thresholds_are_ten_major_units_scaled_by_each_currency() -> None:
    settings = Settings(env=Environment.development)
    assert settings.payout_threshold("CNY") == 1_000  # ¥10.00
    assert settings.payout_threshold("USD") == 1_000  # 10.00 USD
    assert settings.payout_threshold("JPY") == 10  # 10 yen: JPY has no minor unit
    assert settings.payout_threshold("KWD") == 10_000  # 10.000 KWD


def test_payout_thresholds_are_overridden_per_currency_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XIAOPU_PAYOUT_THRESHOLDS_MINOR", '{"JPY": 1000, "CNY": 500}')
    monkeypatch.setenv("XIAOPU_PAYOUT_THRESHOLD_MAJOR", "20")
    settings = Settings(env=Environment.development)
    assert settings.payout_threshold("JPY") == 1_000
    assert settings.payout_threshold("CNY") == 500
    assert settings.payout_threshold("USD") == 2_000


@pytest.mark.parametrize("thresholds", [{"XYZ": 100}, {"cny": 100}, {"CNY": 0}])
def test_payout_thresholds_need_currency_codes_and_positive_amounts(
    thresholds: dict[str, int],
) -> None:
    with pytest.raises(ValidationError, match="payout_thresholds_minor"):
        Settings(env=Environment.development, payout_thresholds_minor=thresholds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["login_limit_per_ip", "login_limit_per_account_ip", "login_slowdown_after"]
)
def test_a_malformed_login_limit_is_refused_at_start_up(name: str) -> None:
    with pytest.raises(ValidationError, match="is not a rate limit"):
        Settings(**{name: "ten a minute"})
