"""``palyra config check|show|path``: validate, inspect and locate the configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from palyra.cli.common import ConfigOpt
from palyra.config.agents import AgentConfig, agents_path, load_agents
from palyra.config.discovery import discover_config
from palyra.config.loader import LoadedConfig, load_config
from palyra.config.problems import ConfigError
from palyra.config.render import render_json, render_text
from palyra.paths import state_dir

app = typer.Typer(help="Check, show and locate palyra.toml.", no_args_is_help=True)


def _fail(error: ConfigError) -> typer.Exit:
    for problem in error.problems:
        typer.echo(str(problem), err=True)
    count = len(error.problems)
    typer.echo(f"{count} problem{'s' if count != 1 else ''} found.", err=True)
    return typer.Exit(1)


def _load(config: Path | None) -> LoadedConfig:
    try:
        return load_config(config)
    except ConfigError as exc:
        raise _fail(exc) from None


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@app.command()
def check(
    config: ConfigOpt = None,
    agents: Annotated[
        Path | None,
        typer.Option("--agents", help="agents.toml to check (default: the one in the state dir)."),
    ] = None,
) -> None:
    """Validate palyra.toml (and agents.toml), printing every problem at once."""
    loaded = _load(config)
    path = agents if agents is not None else agents_path(state_dir(create=False))
    try:
        agent_list: list[AgentConfig] = load_agents(
            path, loaded.config, must_exist=agents is not None
        )
    except ConfigError as exc:
        raise _fail(exc) from None
    mp = loaded.config.model_provider
    source = str(loaded.path) if loaded.path else "built-in defaults"
    groups = f"{_plural(len(mp.routing_groups), 'routing group')}, " if mp.routing_groups else ""
    typer.echo(
        f"OK: {_plural(len(mp.providers), 'provider')}, {_plural(len(mp.models), 'model')}, "
        f"{groups}{_plural(len(agent_list), 'agent')} ({source})"
    )


@app.command()
def show(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Print the effective config and where each value came from. Secrets are never shown."""
    loaded = _load(config)
    typer.echo(render_json(loaded) if as_json else render_text(loaded))


@app.command()
def path(config: ConfigOpt = None) -> None:
    """Print which palyra.toml would be used, and why."""
    location = discover_config(config, os.environ)
    if location.path is None:
        typer.echo(location.reason)
    else:
        exists = "" if location.path.is_file() else " — missing: this is an error"
        typer.echo(f"{location.path} ({location.reason}){exists}")
