"""The deployment as shipped: docker-compose.yml, .env.example, the Dockerfile and the lock.

Docker does not run here, so the files are read and held against the code: each service's
command against the `xiaopu` CLI (through click, options included), the env example against
the Settings validator, and the pins against pyproject.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from pydantic import SecretStr, ValidationError

from xiaopu.cli import app as cli_app

try:  # typer carries its own copy of click since 0.2x; the errors are its own then
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - an older typer, on click itself
    from click.exceptions import UsageError  # type: ignore[assignment]
from xiaopu.config import Environment, Settings

ROOT = Path(__file__).resolve().parents[1]
XIAOPU_SERVICES = ("migrate", "api", "worker")
LONG_RUNNING = ("db", "api", "worker")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _env_lines(text: str) -> tuple[dict[str, str], set[str]]:
    """KEY=value lines of a dotenv file, and the names of `# KEY=...` lines left commented out."""
    values: dict[str, str] = {}
    commented: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line):
            commented.add(match.group(1))
        elif line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {raw!r}"
            values[name.strip()] = value.strip()
    return values, commented


def _example() -> dict[str, str]:
    return _env_lines((ROOT / ".env.example").read_text())[0]


def _filled(example: Mapping[str, str]) -> dict[str, str]:
    """The example with its empty values filled as its header tells a deployer to."""
    filled = dict(example)
    for name, value in example.items():
        if value:
            continue
        if name.endswith("_CALLBACK_SECRET"):
            filled[name] = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        elif name == "POSTGRES_PASSWORD":
            filled[name] = secrets.token_hex(24)
        else:
            filled[name] = secrets.token_urlsafe(48)
    return filled


def _interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, read from the .env file."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        found = env.get(name, "")
        if op == ":?" and not found:
            raise AssertionError(f"compose would refuse to start: {arg}")
        if op == ":-" and not found:
            return arg
        return found

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:\?|:-)([^}]*))?\}", one, value)


def _dockerfile_env() -> dict[str, str]:
    """ENV of the Dockerfile's last stage (what every container starts with)."""
    text = (ROOT / "Dockerfile").read_text()
    last_stage = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in last_stage.splitlines():
        if line.startswith("ENV "):
            for pair in line.removeprefix("ENV ").split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def _container_env(service: str, dotenv: Mapping[str, str]) -> dict[str, str]:
    """What a service's process sees: the image's ENV, then env_file, then `environment`."""
    spec = _services()[service]
    env = dict(_dockerfile_env())
    assert spec.get("env_file") == ".env", f"{service} must read its settings from .env"
    env.update(dotenv)
    for name, value in (spec.get("environment") or {}).items():
        env[name] = _interpolate(str(value), dotenv)
    return env


def _settings_from(env: Mapping[str, str]) -> Settings:
    """Settings as the container's process builds them, from exactly `env`."""
    fields = {
        name.removeprefix("XIAOPU_").lower(): value
        for name, value in env.items()
        if name.startswith("XIAOPU_")
    }
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the files under test provide settings: nothing from the test run's environment."""
    for name in list(os.environ):
        if name.startswith("XIAOPU_"):
            monkeypatch.delenv(name)


# Commands ---------------------------------------------------------------------------------------


def _check_command(argv: list[str]) -> list[str]:
    """Parse argv as the `xiaopu` CLI would, without running it; the command names it takes."""
    assert argv[0] == "xiaopu", argv
    command: Any = typer.main.get_command(cli_app)
    ctx = command.context_class(command, info_name="xiaopu")
    args = list(argv[1:])
    names: list[str] = []
    # Down the groups by name (ours take no options of their own), then the command parses its
    # options and arguments as it would when run: an unknown option or a bad value raises.
    while isinstance(command, typer.core.TyperGroup):
        name, sub, args = command.resolve_command(ctx, args)
        assert sub is not None, f"no command {name!r}"
        assert name is not None
        names.append(name)
        command = sub
        if isinstance(command, typer.core.TyperGroup):
            ctx = command.context_class(command, info_name=name, parent=ctx)
        else:
            ctx = command.make_context(name, list(args), parent=ctx)
            assert not ctx.args, f"unexpected arguments {ctx.args}"
    return names


def test_every_service_runs_a_real_xiaopu_command_with_real_options() -> None:
    services = _services()
    commands = {name: services[name]["command"] for name in XIAOPU_SERVICES}
    assert commands["migrate"] == ["xiaopu", "migrate"]
    assert commands["api"][:2] == ["xiaopu", "serve"]
    assert "--workers" in commands["api"]
    assert commands["worker"][:2] == ["xiaopu", "worker"]
    for name, argv in commands.items():
        assert isinstance(argv, list), f"{name}: exec form, so no shell sits between"
        assert _check_command(argv) == [argv[1]], name
    # The checker itself refuses what the CLI refuses.
    for wrong in (
        ["xiaopu", "serv"],
        ["xiaopu", "serve", "--wrkers", "2"],
        ["xiaopu", "serve", "--workers", "two"],
        ["xiaopu", "serve", "--workers", "0"],
    ):
        with pytest.raises(UsageError):
            _check_command(wrong)


def test_the_image_serves_without_migrating() -> None:
    text = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert cmd is not None
    argv = yaml.safe_load(cmd.group(1))
    assert argv == ["xiaopu", "serve"]
    _check_command(argv)


# Dependencies -----------------------------------------------------------------------------------


def test_api_and_worker_start_only_after_the_migration_completed() -> None:
    services = _services()
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }, name
    migrate = services["migrate"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"
    assert set(services) == {"db", *XIAOPU_SERVICES}


def test_long_running_services_have_health_checks_on_their_own_ports() -> None:
    services = _services()
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck", {})
        assert check.get("test"), f"{name} needs a healthcheck"
        assert not check.get("disable"), name
    env = _container_env("api", _filled(_example()))
    settings = _settings_from(env)
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{settings.port}/readyz" in api_check
    worker_check = " ".join(services["worker"]["healthcheck"]["test"])
    assert settings.worker_metrics_port, "the worker's health check needs its port"
    assert f"http://127.0.0.1:{settings.worker_metrics_port}/healthz" in worker_check


# Settings ---------------------------------------------------------------------------------------


def test_the_env_example_provides_every_setting_production_requires() -> None:
    dotenv = _filled(_example())
    for service in XIAOPU_SERVICES:
        env = _container_env(service, dotenv)
        settings = _settings_from(env)
        assert settings.env is Environment.production, service
        assert settings.database_url == (
            f"postgresql://xiaopu:{dotenv['POSTGRES_PASSWORD']}@db:5432/xiaopu"
        )

    # What production requires, as the validator says: each setting without which it refuses.
    env = _container_env("api", dotenv)
    required = set()
    for name in env:
        if not name.startswith("XIAOPU_"):
            continue
        try:
            _settings_from({k: v for k, v in env.items() if k != name})
        except ValidationError:
            required.add(name)
    assert {
        "XIAOPU_DATABASE_URL",
        "XIAOPU_JWT_SECRET",
        "XIAOPU_ATTRIBUTION_SECRET",
        "XIAOPU_PAYMENT_CALLBACK_SECRET",
        "XIAOPU_CARRIER_CALLBACK_SECRET",
        "XIAOPU_PUBLIC_BASE_URL",
        "XIAOPU_ALLOW_SANDBOX_PAYOUTS",
    } <= required, required
    # Each comes from the one env file, or from compose built out of it.
    environment = _services()["api"].get("environment", {})
    assert required <= set(_example()) | set(environment)


def _secret_settings() -> set[str]:
    secret = set()
    for name, field in Settings.model_fields.items():
        types = getattr(field.annotation, "__args__", (field.annotation,))
        if SecretStr in types:
            secret.add(f"XIAOPU_{name.upper()}")
    return secret


def test_the_env_example_holds_no_secret_and_refuses_to_start_unfilled() -> None:
    example, commented = _env_lines((ROOT / ".env.example").read_text())
    known = {f"XIAOPU_{name.upper()}" for name in Settings.model_fields} | {"POSTGRES_PASSWORD"}
    assert set(example) | commented <= known, "a misspelt setting in .env.example"
    secrets_in_example = (_secret_settings() | {"POSTGRES_PASSWORD"}) & set(example)
    assert "XIAOPU_JWT_SECRET" in secrets_in_example
    blank = {name for name, value in example.items() if not value}
    assert secrets_in_example <= blank, "secrets must be empty in the example"
    # Every value left empty must be filled: with any one of them still empty, compose or the
    # service refuses to start.
    filled = _filled(example)
    for name in blank:
        with pytest.raises((ValidationError, AssertionError)):
            _settings_from(_container_env("api", {**filled, name: ""}))


# Pins -------------------------------------------------------------------------------------------


def test_images_are_pinned_by_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, spec in _services().items():
        image = spec["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, (name, image)
        assert re.fullmatch(r"\d+(\.\d+)+(-[a-z0-9]+)?", tag), (name, image)
        if "build" in spec:
            assert image == f"xiaopu:{version}", name
    froms = re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert froms
    for base in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _marker_env(extra: str = "") -> dict[str, str]:
    env = default_environment()
    env.update(sys_platform="linux", platform_system="Linux", os_name="posix", extra=extra)
    return env


def test_the_lock_pins_every_runtime_dependency_within_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = _lock()
    declared = [Requirement(line) for line in pyproject["project"]["dependencies"]]
    build = [Requirement(line) for line in pyproject["build-system"]["requires"]]
    for requirement in [*declared, *build]:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside pyproject's {requirement}"
        )

    # Down the tree: what each locked package (and the extras asked of it) needs is locked too,
    # within its range, read from the installed metadata of that very version.
    wanted: dict[str, set[str]] = {canonicalize_name(r.name): set(r.extras) for r in declared}
    reachable: set[str] = set()
    queue = list(wanted)
    while queue:
        name = queue.pop()
        if name in reachable:
            continue
        reachable.add(name)
        dist = metadata.distribution(name)
        assert Version(dist.version) == pins[name], (
            f"{name} {dist.version} is installed, {pins[name]} locked: `make lock` after an "
            "upgrade, or reinstall (make installs the locked versions)"
        )
        for line in dist.requires or []:
            requirement = Requirement(line)
            extras = ["", *sorted(wanted.get(name, ()))]
            if requirement.marker is not None and not any(
                requirement.marker.evaluate(_marker_env(extra)) for extra in extras
            ):
                continue
            needed = canonicalize_name(requirement.name)
            assert needed in pins, f"{needed} (for {name}) is not in requirements.lock"
            assert requirement.specifier.contains(pins[needed], prereleases=True), (needed, name)
            wanted.setdefault(needed, set()).update(requirement.extras)
            queue.append(needed)
    # Nothing else: no dev tools in the image.
    build_names = {canonicalize_name(r.name) for r in build}
    assert set(pins) - reachable - build_names == set()


def test_the_image_installs_only_what_the_lock_pins() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in text
    assert re.search(r"ENV PIP_CONSTRAINT=\S*requirements\.lock", text)
    installs = re.findall(r"pip install [^\n]*", text)
    assert installs
    for line in installs:
        assert "-c /tmp/requirements.lock" in line, line
        assert "--no-index" in line, line
