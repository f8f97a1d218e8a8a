"""The `xiaopu` command: serve, dev, worker, migrate, seed, operator, audit, matching, openapi."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import uvicorn
from pydantic import ValidationError

from xiaopu.config import PROJECT_ROOT, Environment, Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from xiaopu.auth.operators import OperatorEntry

T = TypeVar("T")

app = typer.Typer(help="Xiaopu: social-sharing storefront backend.", no_args_is_help=True)

EMBEDDED_DBNAME = "xiaopu"


def _settings() -> Settings:
    """Settings with a database URL, starting the embedded PostgreSQL in development."""
    settings = get_settings()
    if settings.database_url is not None:
        return settings
    if settings.env is not Environment.development:
        raise typer.BadParameter("XIAOPU_DATABASE_URL is required outside development")
    from xiaopu import devdb

    typer.echo(f"Starting the embedded PostgreSQL in {settings.data_dir / 'pg'} ...", err=True)
    server_url = devdb.embedded_server_url(settings.data_dir / "pg")
    asyncio.run(devdb.create_database(server_url, EMBEDDED_DBNAME))
    return settings.model_copy(
        update={"database_url": devdb.with_database(server_url, EMBEDDED_DBNAME)}
    )


def _migrate(settings: Settings) -> None:
    from xiaopu.migrate import upgrade

    if settings.database_url is None:
        raise RuntimeError("set XIAOPU_DATABASE_URL")
    upgrade(settings.database_url)


def _demo_in_development_only(settings: Settings) -> None:
    if settings.env is not Environment.development:
        # The demo accounts share a published password, and one of them is an operator.
        typer.echo(
            f"Refused: the demo data is for development only (XIAOPU_ENV is {settings.env}). "
            "Create operators with `xiaopu operator create`.",
            err=True,
        )
        raise typer.Exit(1)


async def _seed(settings: Settings) -> bool:
    from xiaopu.db import create_engine, create_sessionmaker
    from xiaopu.seed import seed_demo

    _demo_in_development_only(settings)

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await seed_demo(session)
    finally:
        await engine.dispose()


def _print_demo(settings: Settings) -> None:
    from xiaopu.seed import DEMO_LOGINS, DEMO_PASSWORD, demo_share_link

    typer.echo(f"\nXiaopu is up: {settings.public_base_url}/docs")
    typer.echo("Open the demo share link on a phone (or a narrow window), as a buyer would:")
    typer.echo(f"  {demo_share_link(settings.public_base_url)}")
    typer.echo(f"Demo logins (password {DEMO_PASSWORD}):")
    for demo in DEMO_LOGINS:
        typer.echo(f"  {demo.login:32} {demo.role}")
    typer.echo("Ctrl-C stops the server and everything it started.\n")


def _serve(settings: Settings, host: str | None, port: int | None, workers: int = 1) -> None:
    target: str | Callable[..., Any]
    if workers > 1:
        # Each worker process builds its own app from the environment (uvicorn needs an import
        # string to start them); a database URL found here for the embedded PostgreSQL is handed
        # down the same way.
        if settings.database_url is not None:
            os.environ["XIAOPU_DATABASE_URL"] = settings.database_url
        target = "xiaopu.app:create_app"
    else:
        from xiaopu.app import create_app

        target = create_app(settings)
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers,
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
        # RequestContextMiddleware writes the structured access log; uvicorn's own would
        # format a second line per request (on the share redirect too) only to discard it.
        access_log=False,
        # No "Server: uvicorn" on every answer: it tells scanners what to try, and on the
        # share redirect it is one more header to validate and send per click.
        server_header=False,
        # The client address rate limits and click hashes see is X-Forwarded-For's only when
        # the connection comes from one of these proxies.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port.")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes serving the port. Link cache, in-memory rate limits and the click "
            "buffer are each process's own (see the README).",
        ),
    ] = 1,
) -> None:
    """Serve the API (migrations must be applied: see `migrate`)."""
    _serve(_settings(), host, port, workers)


@app.command()
def dev(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port.")] = None,
) -> None:
    """Everything for a local try-out: database (embedded if none is set), migrations, demo data,
    and the server."""
    settings = _settings()
    _migrate(settings)
    if asyncio.run(_seed(settings)):
        typer.echo("Loaded the demo data.", err=True)
    if settings.database_url is None:
        raise RuntimeError("the try-out's database URL was not set up")
    # The worker runs as its own process, as in production; it shares our process group, so
    # Ctrl-C reaches it too.
    worker_process = subprocess.Popen(
        [sys.executable, "-m", "xiaopu.cli", "worker"],
        env={**os.environ, "XIAOPU_DATABASE_URL": settings.database_url},
    )
    _print_demo(settings)
    try:
        _serve(settings, host, port)
    finally:
        worker_process.terminate()
        try:
            worker_process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker_process.kill()


@app.command()
def worker(
    drain: Annotated[
        bool, typer.Option(help="Run the queued jobs, then exit (no schedules).")
    ] = False,
    heartbeat_seconds: Annotated[
        float, typer.Option(help="A job whose worker is silent this long is picked up again.")
    ] = 30.0,
) -> None:
    """Run background jobs (webhook deliveries) and scheduled jobs until stopped."""
    from xiaopu.observability import configure_logging
    from xiaopu.worker import run_worker

    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)
    asyncio.run(
        run_worker(settings, drain=drain, heartbeat_timeout=timedelta(seconds=heartbeat_seconds))
    )


@app.command()
def migrate() -> None:
    """Apply all migrations."""
    _migrate(_settings())


@app.command()
def seed() -> None:
    """Load the demo data (once; a second run changes nothing). Development only."""
    _demo_in_development_only(get_settings())
    inserted = asyncio.run(_seed(_settings()))
    typer.echo("Loaded the demo data." if inserted else "The demo data is already there.")


# Operators ---------------------------------------------------------------------------------

operator_app = typer.Typer(
    help="Operators, the platform's staff: create, disable, list.", no_args_is_help=True
)
app.add_typer(operator_app, name="operator")


def _cli_actor() -> str:
    """Who ran the command, for the audit log: the OS user (a uid when it has no name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"cli:{user}"


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction on the configured database; an AppError ends the command
    with its message and exit code 1, nothing written."""
    from xiaopu.db import create_engine, create_sessionmaker
    from xiaopu.errors import AppError

    async def run(settings: Settings) -> T:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run(_settings()))
    except AppError as exc:
        typer.echo(f"Error: {exc.detail} ({exc.code})", err=True)
        raise typer.Exit(1) from None


def _password(env_name: str | None) -> str:
    if env_name is None:
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    # A secret handed to one command, not a setting: read here, never echoed or logged.
    value = os.environ.get(env_name)
    if not value:
        raise typer.BadParameter(f"the environment variable {env_name} is not set or empty")
    return value


def _print_operator(entry: OperatorEntry) -> None:
    disabled = entry.disabled_at.isoformat(timespec="seconds") if entry.disabled_at else "-"
    typer.echo(
        f"{entry.login:32} {entry.display_name or '-':20} {entry.role:8} "
        f"{entry.created_at.isoformat(timespec='seconds'):25} {disabled}"
    )


@operator_app.command("create")
def operator_create(
    login: Annotated[str, typer.Argument(help="Email address or phone number.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    password_env: Annotated[
        str | None,
        typer.Option(
            help="Read the password from this environment variable (e.g. "
            "XIAOPU_OPERATOR_PASSWORD) instead of prompting for it."
        ),
    ] = None,
) -> None:
    """Make a person an operator, creating their account unless the login has one. An existing
    account is promoted only with its own password; a disabled operator is enabled again."""
    from xiaopu.auth import operators
    from xiaopu.auth.schemas import SignupRequest

    password = _password(password_env)
    login_field = "email" if "@" in login else "phone"
    try:
        data = SignupRequest.model_validate(
            {login_field: login.strip(), "password": password, "display_name": name}
        )
    except ValidationError as exc:
        # Without the input values: one of them is the password.
        for error in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in error["loc"]) or "input"
            typer.echo(f"Error: {field}: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    actor = _cli_actor()
    entry = _in_transaction(lambda session: operators.create(session, data, actor=actor))
    verb = "Created" if entry.account_created else "Made"
    typer.echo(f"{verb} operator {entry.login} ({entry.display_name or '-'}), {entry.account_id}.")


@operator_app.command("disable")
def operator_disable(
    login: Annotated[str, typer.Argument(help="The operator's email address or phone number.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit log.")] = None,
) -> None:
    """Refuse an operator from their next request on (their person account stays)."""
    from xiaopu.auth import operators

    try:
        operators.parse_login(login)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    actor = _cli_actor()
    entry = _in_transaction(
        lambda session: operators.disable(session, login, actor=actor, reason=reason)
    )
    typer.echo(f"Disabled operator {entry.login}.")


@operator_app.command("list")
def operator_list() -> None:
    """Every operator, disabled ones too: login, name, role, created, disabled."""
    from xiaopu.auth import operators

    entries = _in_transaction(operators.list_all)
    typer.echo(f"{'login':32} {'name':20} {'role':8} {'created':25} disabled")
    for entry in entries:
        _print_operator(entry)


audit_app = typer.Typer(help="The operators' audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 at the first record that breaks it."""
    from xiaopu.audit import service as audit

    report = _in_transaction(audit.verify_chain)
    if not report.ok:
        typer.echo(
            f"Broken at record {report.broken_at}: {report.problem} "
            f"({report.records} records verified before it).",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"The audit log's chain holds: {report.records} records.")


matching_app = typer.Typer(help="Matching (货配人): recommendations.", no_args_is_help=True)
app.add_typer(matching_app, name="matching")


@matching_app.command("compute")
def matching_compute() -> None:
    """Run the nightly `matching.compute` job now: rewrite every shop's recommendations and
    every product's recommended shops from the last 30 local days, in one transaction."""
    from xiaopu.matching import service as matching

    settings = _settings()
    result = _in_transaction(lambda session: matching.compute_all(session, settings))
    typer.echo(
        f"Computed from {result.window.start.isoformat()} to {result.window.end.isoformat()}: "
        f"{result.shops} shops, {result.products} products on sale, "
        f"{result.recommendations} recommendations, {result.recommended_shops} recommended shops."
    )


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the schema.")] = PROJECT_ROOT
    / "openapi"
    / "openapi.json",
) -> None:
    """Write the OpenAPI schema of the app."""
    from xiaopu.app import create_app

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_openapi(create_app(get_settings()).openapi()))
    typer.echo(f"Wrote {output}")


def render_openapi(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    app()
