"""The ``palyra`` entry point. ``palyra version`` answers without loading Typer (a quarter of a
second on a busy machine); everything else runs the Typer app in :mod:`palyra.cli.app`."""

from __future__ import annotations

import sys
from typing import Any

from palyra import __version__


def main() -> None:
    if sys.argv[1:] in (["version"], ["--version"]):
        print(__version__)
        return
    from palyra.cli.app import app

    app()


def __getattr__(name: str) -> Any:
    """``palyra.cli.main.app``, loaded when first asked for (tests and embedders use it)."""
    if name == "app":
        from palyra.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
