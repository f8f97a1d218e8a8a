"""Settings: the one place that reads the environment (prefix XIAOPU_)."""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from xiaopu.kit.money import CurrencyCode, exponent

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Development-only secrets. Using them outside development is refused at start-up.
_DEV_JWT_SECRET = "dev-only-jwt-secret-do-not-use-in-production-0123456789"  # noqa: S105
_DEV_ATTRIBUTION_SECRET = "dev-only-attribution-secret-not-for-production-0123"  # noqa: S105
# Standard Webhooks-style secrets for the sandbox payment provider's and carriers' callbacks.
_DEV_PAYMENT_SECRET = "whsec_ZGV2LW9ubHktc2FuZGJveC1wYXltZW50LXNlY3JldA=="  # noqa: S105
_DEV_CARRIER_SECRET = "whsec_ZGV2LW9ubHktY2Fycmllci1jYWxsYmFjay1zZWNyZXQ="  # noqa: S105


def _is_whsec(value: str) -> bool:
    """A Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes."""
    if not value.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return False
    return 24 <= len(key) <= 64


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XIAOPU_", env_file=".env", extra="ignore")

    env: Environment = Field(
        default=Environment.development,
        description="development, test or production. Only development has usable default secrets.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "PostgreSQL URL (postgresql+asyncpg://...). Unset in development: an embedded "
            "PostgreSQL is started in `data_dir`."
        ),
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".data",
        description="Where the embedded PostgreSQL keeps its files.",
    )
    # Sized above a busy worker's concurrent requests: a connection opened past the pool is
    # closed again on return, and reopening one (TLS probe, auth, type introspection, cold
    # statement cache) costs more than the request it serves.
    db_pool_size: int = Field(default=20, ge=1, description="Connections kept per process.")
    db_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load.")
    db_ping_idle_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A pooled connection idle this long is pinged before use (0 = always).",
    )
    db_statement_timeout_ms: int = Field(
        default=15_000, ge=0, description="Statement timeout for request sessions (0 = none)."
    )

    host: str = Field(default="127.0.0.1", description="Address `xiaopu serve` binds.")
    port: int = Field(default=8000, description="Port `xiaopu serve` binds.")
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL the service is reached at (share links, QR codes). Required in "
        "production.",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        description=(
            "Comma-separated addresses or networks (CIDR) of the proxies whose X-Forwarded-For "
            "and X-Forwarded-Proto `xiaopu serve` believes; `*` trusts any sender."
        ),
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token that GET /metrics on the API port requires. Unset: /metrics is open "
            "in development and test, and off (404) in production."
        ),
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description=(
            "Each `xiaopu serve` process serves its own metrics on the first free port from "
            "this one up (0 = off)."
        ),
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port `xiaopu worker` serves /metrics and /healthz on (0 = off).",
    )

    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key for access tokens (≥ 32 bytes). Required outside development.",
    )
    jwt_issuer: str = Field(default="xiaopu", description="`iss` of access tokens.")
    jwt_audience: str = Field(default="xiaopu-app", description="`aud` of access tokens.")
    access_token_ttl_seconds: int = Field(default=900, ge=60, description="Access token lifetime.")
    refresh_token_ttl_days: int = Field(default=30, ge=1, description="Refresh token lifetime.")

    # Login throttling counts failures only (OWASP Authentication Cheat Sheet): a client that
    # fails too often is refused, an account that fails too often is slowed down, never locked,
    # so nobody can lock its owner out by guessing.
    login_limit_per_ip: str = Field(
        default="100/15minutes",
        description="Failed logins allowed per client IP (limits syntax); then 429.",
    )
    login_limit_per_account_ip: str = Field(
        default="10/15minutes",
        description="Failed logins allowed per account from one client IP; then 429.",
    )
    login_slowdown_after: str = Field(
        default="10/15minutes",
        description="Failed logins on one account, from all clients, before its attempts slow.",
    )
    login_slowdown_base_ms: int = Field(
        default=250, ge=0, description="First delay once an account is slowed; doubles per failure."
    )
    login_slowdown_max_ms: int = Field(
        default=4000, ge=0, le=30_000, description="Longest delay of a login attempt."
    )
    session_revocation_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=5,
        description="How often each process reads sessions revoked by the others.",
    )
    rate_limit_storage_url: str = Field(
        default="memory://",
        description=(
            "Where rate-limit counters live: memory:// (one process) or "
            "async+redis://host:6379 (shared by all workers)."
        ),
    )

    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    max_response_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=65_536,
        description=(
            "Largest answer sent whole (streamed CSV downloads excepted); a larger one is a "
            "defect, refused as 500 `response_too_large` and counted."
        ),
    )

    supplier_auto_approve: bool = Field(
        default=False, description="Activate new suppliers at once instead of awaiting an operator."
    )
    trial_shop_product_limit: int = Field(
        default=30, ge=1, description="Products a `trial` shop may carry."
    )
    standard_shop_after_sales: int = Field(
        default=5, ge=1, description="Completed sales that promote a shop to `standard`."
    )
    attribution_secret: SecretStr | None = Field(
        default=None,
        description=(
            "HMAC key for attribution tokens and visitor hashes. Required outside development."
        ),
    )
    attribution_window_days: int = Field(
        default=7, ge=1, le=90, description="How long a click's attribution token is honoured."
    )
    share_target_template: str = Field(
        default="{public_base_url}/m/{shop_slug}?product={product_id}&xp_at={token}",
        description=(
            "Where a share link sends people: a mobile-web URL or an app deep link with the "
            "placeholders {public_base_url}, {shop_slug}, {product_id} (empty for a shop link) "
            "and {token}."
        ),
    )
    checkout_fast_path: bool = Field(
        default=True,
        description=(
            "Answer POST /v1/orders ahead of FastAPI's routing (same behaviour, less CPU); "
            "off serves it through the declared endpoint."
        ),
    )
    click_buffer_max: int = Field(
        default=100_000, ge=100, description="Clicks held in memory before new ones are dropped."
    )
    webhook_allow_loopback: bool = Field(
        default=False,
        description=(
            "Let webhooks reach loopback addresses and plain-http URLs. Development and tests "
            "only: refused in production."
        ),
    )
    worker_concurrency: int = Field(
        default=20, ge=1, description="Jobs one `xiaopu worker` process runs at once."
    )

    order_expiry_minutes: int = Field(
        default=30,
        ge=1,
        le=1440,
        description="Unpaid orders expire (and free their stock) after this.",
    )
    platform_fee_bps: int = Field(
        default=500,
        ge=0,
        le=10_000,
        description="Platform fee on each line's base, frozen at checkout.",
    )
    self_purchase_policy: Literal["earn", "none", "hold"] = Field(
        default="earn",
        description=(
            "A shopkeeper buying in their own shop: `earn` as usual, earn `none`, or `hold` the "
            "earnings for an operator's review."
        ),
    )
    payout_threshold_major: int = Field(
        default=10,
        ge=1,
        description=(
            "Smallest withdrawal in major units of its currency (10: ¥10.00, 10.00 USD, 10 JPY), "
            "for currencies `payout_thresholds_minor` does not name."
        ),
    )
    payout_thresholds_minor: dict[CurrencyCode, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description=(
            'Smallest withdrawal per currency in its minor units, as JSON: {"JPY": 1000} '
            "makes it 1,000 yen. Overrides `payout_threshold_major`."
        ),
    )
    payout_provider: Literal["sandbox"] = Field(
        default="sandbox",
        description=(
            "Payout provider for withdrawals. Only `sandbox` ships, and it pays nobody: refused "
            "outside development and test unless `allow_sandbox_payouts`."
        ),
    )
    allow_sandbox_payouts: bool = Field(
        default=False,
        description="Let a production deployment run the sandbox payout provider (a staging site).",
    )
    payout_concurrency: int = Field(
        default=8, ge=1, le=100, description="Payouts one run asks of the provider at once."
    )
    payout_claim_size: int = Field(
        default=200, ge=1, le=10_000, description="Withdrawals a payout run claims per commit."
    )
    payout_claim_timeout_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "A payout claimed this long ago and still unrecorded is taken over by the next run "
            "(its worker died), which asks the provider what became of it before paying."
        ),
    )
    payout_crash_at: Literal["claimed", "called", "recorded"] | None = Field(
        default=None,
        description=(
            "Tests only (refused elsewhere): the payout job SIGKILLs its own process the first "
            "time it reaches this step, to prove a dead worker pays nobody twice."
        ),
    )
    max_line_quantity: int = Field(
        default=99, ge=1, le=10_000, description="Most units of one variant in one order."
    )
    max_order_lines: int = Field(default=50, ge=1, le=500, description="Most lines in one order.")
    campaign_shards: int = Field(
        default=32,
        ge=1,
        le=256,
        description="Rows each campaign's allocation (per variant) and budget (per currency) are "
        "split over, so that a flash sale's checkouts take different rows instead of queueing "
        "on one. A checkout takes a row no other checkout holds and never waits for one, so "
        "keep it well above the checkouts written at once (db_pool_size × workers): with "
        "every row held, a checkout runs again.",
    )
    statement_inline_max_lines: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description=(
            "Most lines a supplier statement is answered with inline (JSON pages or CSV); a "
            "longer period is refused with statement_too_large and built as an export."
        ),
    )
    statement_export_retention_hours: int = Field(
        default=168,
        ge=1,
        le=24 * 90,
        description=(
            "How long a ready statement export can be downloaded; then its CSV is deleted and "
            "the export answers `expired`."
        ),
    )
    statement_exports_pending_max: int = Field(
        default=3,
        ge=1,
        le=100,
        description=(
            "Most statement exports one supplier may have queued or building at once; another "
            "is refused with 429 `too_many_exports` until one finishes."
        ),
    )
    payment_provider: str = Field(
        default="sandbox",
        description=(
            "Payment provider for new orders. Only `sandbox` ships; its pay endpoint is off in "
            "production."
        ),
    )
    payment_callback_secret: SecretStr = Field(
        default=SecretStr(_DEV_PAYMENT_SECRET),
        description="whsec_ secret the payment provider signs callbacks with.",
    )
    carrier_callback_secret: SecretStr = Field(
        default=SecretStr(_DEV_CARRIER_SECRET),
        description="whsec_ secret carriers sign delivery callbacks with.",
    )

    log_level: str = Field(default="INFO", description="Log level.")
    log_json: bool = Field(default=True, description="JSON logs (false: human-readable console).")

    time_zone: str = Field(
        default="Asia/Shanghai",
        description=(
            "IANA time zone of the days, weeks and months people read (statements, settlement "
            "periods); stored times stay UTC."
        ),
    )
    settlement_period: Literal["daily", "weekly", "monthly"] = Field(
        default="weekly",
        description=(
            "Length of a supplier settlement period, in local days of `time_zone`: weeks run "
            "Monday to Sunday."
        ),
    )

    @field_validator("login_limit_per_ip", "login_limit_per_account_ip", "login_slowdown_after")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        # Checked at start-up, not by the first login to use it.
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as 10/15minutes") from exc
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone") from exc
        return value

    @model_validator(mode="after")
    def _secrets_required_outside_development(self) -> Self:
        development = self.env is Environment.development
        if self.jwt_secret is None:
            if not development:
                raise ValueError("XIAOPU_JWT_SECRET is required outside development")
            self.jwt_secret = SecretStr(_DEV_JWT_SECRET)
        elif not development:
            value = self.jwt_secret.get_secret_value()
            if len(value.encode()) < 32 or value == _DEV_JWT_SECRET:
                raise ValueError("XIAOPU_JWT_SECRET must be a private value of at least 32 bytes")
        if self.attribution_secret is None:
            if not development:
                raise ValueError("XIAOPU_ATTRIBUTION_SECRET is required outside development")
            self.attribution_secret = SecretStr(_DEV_ATTRIBUTION_SECRET)
        elif not development:
            value = self.attribution_secret.get_secret_value()
            if len(value.encode()) < 32 or value == _DEV_ATTRIBUTION_SECRET:
                raise ValueError(
                    "XIAOPU_ATTRIBUTION_SECRET must be a private value of at least 32 bytes"
                )
        if self.env is Environment.production and self.webhook_allow_loopback:
            raise ValueError("XIAOPU_WEBHOOK_ALLOW_LOOPBACK is for development and tests only")
        if self.env is Environment.production and self.database_url is None:
            raise ValueError("XIAOPU_DATABASE_URL is required in production")
        if self.env is Environment.production:
            dev_secrets = {_DEV_PAYMENT_SECRET, _DEV_CARRIER_SECRET}
            if {
                self.payment_callback_secret.get_secret_value(),
                self.carrier_callback_secret.get_secret_value(),
            } & dev_secrets:
                raise ValueError(
                    "set XIAOPU_PAYMENT_CALLBACK_SECRET and XIAOPU_CARRIER_CALLBACK_SECRET"
                )
            for name in ("payment_callback_secret", "carrier_callback_secret"):
                secret: SecretStr = getattr(self, name)
                if not _is_whsec(secret.get_secret_value()):
                    raise ValueError(
                        f"XIAOPU_{name.upper()} must be whsec_ and the base64 of 24 to 64 bytes"
                    )
            # Share links and QR codes carry it: the loopback default would send every buyer
            # to their own machine.
            if "public_base_url" not in self.model_fields_set:
                raise ValueError("XIAOPU_PUBLIC_BASE_URL is required in production")
        if self.metrics_token is not None and len(self.metrics_token.get_secret_value()) < 32:
            raise ValueError("XIAOPU_METRICS_TOKEN must be at least 32 characters")
        if self.payout_crash_at is not None and self.env is not Environment.test:
            raise ValueError("XIAOPU_PAYOUT_CRASH_AT is for tests only")
        rehearsal = self.env in (Environment.development, Environment.test)
        if self.payout_provider == "sandbox" and not rehearsal and not self.allow_sandbox_payouts:
            raise ValueError(
                "XIAOPU_PAYOUT_PROVIDER=sandbox pays nobody: refused outside development and "
                "test unless XIAOPU_ALLOW_SANDBOX_PAYOUTS=true"
            )
        return self

    def payout_threshold(self, currency: str) -> int:
        """The smallest withdrawal in `currency`, in its minor units."""
        override = self.payout_thresholds_minor.get(currency)
        if override is not None:
            return override
        scale: int = 10 ** exponent(currency)
        return self.payout_threshold_major * scale

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def attribution_key(self) -> bytes:
        if self.attribution_secret is None:
            raise RuntimeError("attribution_secret is set by the validator")
        return self.attribution_secret.get_secret_value().encode()

    @property
    def jwt_key(self) -> str:
        if self.jwt_secret is None:
            raise RuntimeError("jwt_secret is set by the validator")
        return self.jwt_secret.get_secret_value()


@lru_cache
def get_settings() -> Settings:
    return Settings()
