"""The ``palyra`` Typer app, sub-commands registered explicitly below.

Each sub-command's module is imported when that command runs (or when help lists them all):
importing them all up front pulled in the daemon, the store and the vault for every command and
made ``palyra version`` take over a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from palyra import __version__

if TYPE_CHECKING:
    from typer import _click as click  # the click that Typer carries and builds on

# name -> (module, attribute): a ``typer.Typer`` (a group of commands) or a command function.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("palyra.cli.serve", "serve"),
    "fake-upstream": ("palyra.cli.fake_upstream", "command"),
    "config": ("palyra.cli.config_cmd", "app"),
    "vault": ("palyra.cli.vault", "app"),
    "auth": ("palyra.cli.auth", "app"),
    "token": ("palyra.cli.token", "app"),
    "agents": ("palyra.cli.agents", "app"),
    "models": ("palyra.cli.models", "app"),
    "cron": ("palyra.cli.cron", "app"),
    "db": ("palyra.cli.db", "app"),
    "chat": ("palyra.cli.chat", "chat"),
    "doctor": ("palyra.cli.doctor", "doctor"),
    "usage": ("palyra.cli.usage", "usage"),
}


def load_subcommand(name: str) -> click.Command:
    """The click command for one entry of :data:`SUBCOMMANDS`, its module imported now."""
    module, attribute = SUBCOMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer()
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: its own commands, then :data:`SUBCOMMANDS`, each loaded when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in SUBCOMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            self.commands[cmd_name] = load_subcommand(cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="palyra",
    cls=LazyGroup,
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
