"""What CLI commands share: how they fail, and which database they open.

The database is ``--db-url``, else ``[storage] url`` of the config: one rule for every command
that touches the store (vault, auth, token), so a secret put with ``palyra vault`` lands where the
daemon and ``palyra auth`` will look for it.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from palyra.config.loader import load_config
from palyra.config.problems import ConfigError


def fail(message: str, code: int = 1) -> NoReturn:
    """``error: <message>`` on stderr, then exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def store_url(db_url: str | None) -> str:
    """``db_url`` when given, else the configured ``[storage] url`` (which defaults to the SQLite
    file in the state dir); a broken config exits 1 with its problems."""
    if db_url:
        return db_url
    try:
        return load_config().config.storage.url
    except ConfigError as exc:
        fail(f"cannot read the config for [storage] url:\n{exc}")
