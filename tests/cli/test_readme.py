"""The README documents what the code has: its config example is a valid config naming every
setting of the schema, its CLI list names every command, and the LICENSE it refers to exists."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from palyra.cli.main import app
from palyra.config.loader import load_config
from palyra.config.schema import ModelConfig, PalyraConfig, ProviderConfig, RoutingGroupConfig

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _leaves(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, f"{prefix}{name}.")
        elif name not in ("providers", "models", "routing_groups"):
            yield f"{prefix}{name}"


def test_the_config_example_is_a_valid_config(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", _section("Configuration"), re.S)
    assert example, "no ```toml example in the Configuration section"
    tomllib.loads(example.group(1))
    path = tmp_path / "palyra.toml"
    path.write_text(example.group(1), encoding="utf-8")
    loaded = load_config(path, {})
    models = {m.id: m for m in loaded.config.model_provider.models}
    assert models["default"].aliases == ["fast", "mini"]


@pytest.mark.parametrize(
    "key",
    [
        *_leaves(PalyraConfig),
        *(f"providers.{k}" for k in _leaves(ProviderConfig)),
        *(f"models.{k}" for k in _leaves(ModelConfig)),
        "routing_groups",
        *(f"routing_groups.{k}" for k in _leaves(RoutingGroupConfig)),
    ],
)
def test_every_setting_of_the_schema_is_documented(key: str) -> None:
    name = re.escape(key.rsplit(".", 1)[-1])
    in_example = re.search(rf"^{name} = ", README, re.M)
    in_prose = re.search(rf"`[^`\n]*(?<![\w-]){name}(?![\w-])[^`\n]*`", README)
    assert in_example or in_prose, f"{key} is not documented in README.md"


def test_the_cli_list_names_every_command_and_the_version_flag() -> None:
    listing = _section("CLI")
    assert "palyra --version" in listing
    group: Any = typer.main.get_command(app)
    names = group.list_commands(typer.Context(group))  # the root loads its sub-commands lazily
    assert {"serve", "chat", "cron", "version"} <= set(names)
    for name in names:
        assert f"palyra {name}" in listing, f"palyra {name} is missing from the CLI list"


def test_there_is_a_license_file_matching_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "9. Accepting Warranty or Additional Liability." in text
