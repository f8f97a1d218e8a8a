"""Alembic, driven from code: configuration, upgrade, and the head revision for /readyz."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from xiaopu.config import PROJECT_ROOT


def _project_file(name: str) -> Path:
    # An editable install finds them beside src/; an image runs from the project folder.
    for base in (PROJECT_ROOT, Path.cwd()):
        if (base / name).exists():
            return base / name
    raise FileNotFoundError(f"cannot find {name}/ beside the project")


def alembic_config(database_url: str | None = None, *, configure_logger: bool = True) -> Config:
    cfg = Config(str(_project_file("alembic.ini")))
    cfg.attributes["configure_logger"] = configure_logger
    cfg.set_main_option("script_location", str(_project_file("migrations")))
    if database_url is not None:
        # Passed as an attribute, not an ini option: URLs may hold '%' that ini files interpolate.
        cfg.attributes["database_url"] = database_url
    return cfg


@lru_cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(database_url: str, revision: str = "head", *, quiet: bool = False) -> None:
    """Blocking: call it outside an event loop, or in a thread."""
    command.upgrade(alembic_config(database_url, configure_logger=not quiet), revision)


def check(database_url: str) -> None:
    """Raises when the models hold changes that no migration has."""
    command.check(alembic_config(database_url, configure_logger=False))
