"""The `xiaopu` command: serve, dev, migrate, seed, openapi."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from xiaopu.config import PROJECT_ROOT, Environment, Settings, get_settings

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


async def _seed(settings: Settings) -> bool:
    from xiaopu.db import create_engine, create_sessionmaker
    from xiaopu.seed import seed_demo

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
    """Load the demo data (once; a second run changes nothing)."""
    inserted = asyncio.run(_seed(_settings()))
    typer.echo("Loaded the demo data." if inserted else "The demo data is already there.")


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
