"""What CLI commands share: how they fail, and which database they open.

The database is ``--db-url``, else ``[storage] url`` of the config: one rule for every command
that touches the store (vault, auth, token), so a secret put with ``palyra vault`` lands where the
daemon and ``palyra auth`` will look for it. Exit codes: 1 for an error, 2 for bad usage, 3 when
the stored state is damaged (the file is left as it is; restore it from a backup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from palyra.config.loader import load_config
from palyra.config.problems import ConfigError
from palyra.config.schema import PalyraConfig
from palyra.model import PalyraError
from palyra.store import StoreCorrupt

EXIT_STATE_DAMAGED = 3

DISCOVERY = "$PALYRA_CONFIG, else $XDG_CONFIG_HOME/palyra/palyra.toml, else the built-in deterministic setup"
"""Config discovery after ``--config``, as :func:`palyra.config.discovery.discover_config` does it."""

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help=f"palyra.toml to use (default: {DISCOVERY}).")
]
"""``--config`` for every command that reads the config. Help texts escape ``\\[`` because rich
markup would swallow ``[storage]``."""

DbUrlOpt = Annotated[
    str | None,
    typer.Option("--db-url", help="Database URL (default: \\[storage] url of the config)."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """``error: <message>`` on stderr, then exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def exit_code_for(exc: PalyraError) -> int:
    """3 for a damaged store (scripts can tell it from an ordinary failure), else 1."""
    return EXIT_STATE_DAMAGED if isinstance(exc, StoreCorrupt) else 1


def fail_on(exc: PalyraError) -> NoReturn:
    """``fail`` with a Palyra error's message and its exit code."""
    fail(exc.envelope.message, exit_code_for(exc))


def store_url(db_url: str | None, config: Path | None = None) -> str:
    """``db_url`` when given, else ``[storage] url`` of the config (``config``, else discovery),
    which defaults to the SQLite file in the state dir; a broken config exits 1 with its problems."""
    if db_url:
        return db_url
    return read_config(config, "[storage] url").storage.url


def read_config(config: Path | None, wanted: str) -> PalyraConfig:
    """The effective config; a broken one exits 1 listing its problems and what was wanted."""
    try:
        return load_config(config).config
    except ConfigError as exc:
        fail(f"cannot read the config for {wanted}:\n{exc}")
