"""Where each effective value came from: ``default``, ``file:<path>:<line>`` or ``env:<VAR>``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from palyra.config.env_overrides import EnvOverride, override_for
from palyra.config.locate import KeyLines
from palyra.config.problems import KeyPath, format_path

Source = str
"""``"default"`` | ``"file:<path>:<line>"`` | ``"env:PALYRA_X__Y"``."""


def leaves(data: Any, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Leaf values of a dumped config. Arrays of scalars and empty tables are leaves; arrays of
    tables are walked entry by entry."""
    if isinstance(data, Mapping):
        if not data:
            yield prefix, data
        for key, value in data.items():
            yield from leaves(value, (*prefix, key))
    elif isinstance(data, list) and any(isinstance(item, Mapping) for item in data):
        for index, item in enumerate(data):
            yield from leaves(item, (*prefix, index))
    else:
        yield prefix, data


def present(document: Any, path: KeyPath) -> bool:
    """Whether ``path`` exists in a parsed TOML document."""
    node = document
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return False
        elif not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def compute_provenance(
    effective: Mapping[str, Any],
    document: Mapping[str, Any],
    lines: KeyLines | None,
    file_label: str | None,
    overrides: list[EnvOverride],
) -> dict[str, Source]:
    """One source for every leaf of ``effective`` (a ``model_dump`` of the loaded config)."""
    sources: dict[str, Source] = {}
    for path, _ in leaves(effective):
        override = override_for(path, overrides)
        if override is not None:
            source = f"env:{override.variable}"
        elif lines is not None and present(document, path):
            source = f"file:{file_label}:{lines.line_of(path)}"
        else:
            source = "default"
        sources[format_path(path)] = source
    return sources
