"""Tolerant readers over a raw config document, so cross-checks run even when the schema fails.

Wrong types are the schema's to report; these helpers simply skip them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MP = "model_provider"


def section(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key)
    return value if isinstance(value, Mapping) else {}


def entries(document: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    """``(index, table)`` for each table in ``[[model_provider.<key>]]``."""
    value = section(document, MP).get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]


def text(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    return value if isinstance(value, str) else None


def texts(table: Mapping[str, Any], key: str) -> list[tuple[int, str]]:
    """``(index, item)`` for each string in the array at ``key``."""
    value = table.get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, str)]


def known(names: list[str]) -> str:
    return ", ".join(names) if names else "none"
