"""The ``palyra`` entry point: one Typer app, sub-commands registered explicitly below."""

from __future__ import annotations

from typing import Annotated

import typer

from palyra import __version__
from palyra.cli import (
    agents,
    auth,
    chat,
    config_cmd,
    cron,
    doctor,
    fake_upstream,
    models,
    token,
    vault,
)
from palyra.cli.serve import serve

app = typer.Typer(
    name="palyra",
    help="Palyra: a model-provider daemon. Routes OpenAI/Anthropic-style requests to real providers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the Palyra version and exit.",
        ),
    ] = False,
) -> None:
    """Palyra: a model-provider daemon and library."""


@app.command()
def version() -> None:
    """Print the Palyra version."""
    typer.echo(__version__)


app.command(name="serve")(serve)
app.command(name="fake-upstream")(fake_upstream.command)
app.add_typer(config_cmd.app, name="config")
app.add_typer(vault.app, name="vault")
app.add_typer(auth.app, name="auth")
app.add_typer(token.app, name="token")
app.add_typer(agents.app, name="agents")
app.add_typer(models.app, name="models")
app.add_typer(cron.app, name="cron")
app.command(name="chat")(chat.chat)
app.command(name="doctor")(doctor.doctor)


def main() -> None:
    app()
