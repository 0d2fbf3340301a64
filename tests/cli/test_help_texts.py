"""Every ``--help`` says what the code does: bracketed config sections survive rich markup, the
discovery order is the real one, examples name the right provider, and ``--version`` exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from palyra import __version__
from palyra.cli.main import app
from palyra.config.discovery import discover_config

WIDE = {"COLUMNS": "400", "TERMINAL_WIDTH": "400"}
# Commands that read no palyra.toml at all.
NO_CONFIG = {("version",), ("fake-upstream",)}
BRACKETED = re.compile(r"\\?\[[a-z_.]+\]")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if not hasattr(command, "list_commands"):
        yield path, command
        return
    ctx = typer.Context(command)
    for name in command.list_commands(ctx):  # the root loads its sub-commands when asked
        yield from _commands(command.get_command(ctx, name), (*path, name))


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _help(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())  # rich's borders and wrapping out


def _texts(command: Any) -> list[str]:
    return [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_bracketed_words_in_help_are_shown_literally(path: tuple[str, ...]) -> None:
    rendered = _help(*path)
    for text in _texts(COMMANDS[path]):
        for token in BRACKETED.findall(text):
            literal = token.removeprefix("\\")
            assert literal in rendered, f"{' '.join(path)} --help lost {literal!r}"


def test_the_sections_named_in_help_texts_are_really_there() -> None:
    assert "(default: [daemon] bind, 127.0.0.1:7142)" in _help("serve")
    assert "(default: [daemon] workers, 1)" in _help("serve")
    for path in (("vault", "get"), ("token", "list"), ("auth", "profiles", "list")):
        assert "Database URL (default: [storage] url of the config)" in _help(*path)


def test_serve_help_gives_the_discovery_order_the_loader_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _help("serve")
    assert "./palyra.toml" not in text
    assert (
        "palyra.toml to use (default: $PALYRA_CONFIG, else $XDG_CONFIG_HOME/palyra/palyra.toml, "
        "else the built-in deterministic setup)"
    ) in text
    (tmp_path / "palyra.toml").write_text("version = 1\n")
    monkeypatch.chdir(tmp_path)  # a palyra.toml here is not read, as the help says
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert discover_config(None, env).path is None


def test_each_provider_example_names_its_own_profile() -> None:
    anthropic = _help("auth", "anthropic", "api-key")
    assert "e.g. anthropic-default" in anthropic and "openai-default" not in anthropic
    assert "e.g. openai-default" in _help("auth", "openai", "api-key")


def test_models_test_shows_its_optional_id_once_bracketed() -> None:
    text = _help("models", "test")
    assert "models test [OPTIONS] [ID]" in text and "[[ID]]" not in text


@pytest.mark.parametrize("args", [["--version"], ["version"]])
def test_version_flag_and_command(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert (result.exit_code, result.output) == (0, f"{__version__}\n")


def test_version_flag_is_listed_in_the_root_help() -> None:
    assert re.search(r"--version (<bool> )?Print the Palyra version and exit\.", _help())


@pytest.mark.parametrize(
    "path", sorted(set(COMMANDS) - NO_CONFIG), ids=" ".join
)  # fmt: skip
def test_every_command_that_reads_the_config_takes_config(path: tuple[str, ...]) -> None:
    options = {opt for param in COMMANDS[path].params for opt in param.opts}
    assert "--config" in options
    assert "palyra.toml to use (default: $PALYRA_CONFIG, else" in _help(*path)
