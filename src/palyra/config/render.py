"""The effective config for people: references shown as written, secret-looking values redacted."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

from palyra.config.loader import LoadedConfig
from palyra.config.problems import KeyPath, format_path
from palyra.config.provenance import leaves
from palyra.config.security import is_secret_reference
from palyra.model import redact

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(r"(?i)(api[_-]?key|token|secret|password|authorization|credential)")
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/@\s]+@")


def _secret_key(path: KeyPath) -> bool:
    return any(isinstance(part, str) and _SECRET_KEY.search(part) for part in path)


def display_value(path: KeyPath, value: Any) -> Any:
    """``value`` as safe to print: references kept, literal secrets and URL passwords removed."""
    if isinstance(value, str):
        if is_secret_reference(value):
            return value
        if _secret_key(path) and value:
            return REDACTED
        return redact(_URL_PASSWORD.sub(rf"\1{REDACTED}@", value), limit=10_000)
    if isinstance(value, Mapping):
        return {key: display_value((*path, key), item) for key, item in value.items()}
    if isinstance(value, list):
        return [display_value((*path, index), item) for index, item in enumerate(value)]
    return value


def effective_document(loaded: LoadedConfig) -> dict[str, Any]:
    dump = loaded.config.model_dump(mode="json")
    return {key: display_value((key,), value) for key, value in dump.items()}


def render_json(loaded: LoadedConfig) -> str:
    body = {
        "path": str(loaded.path) if loaded.path else None,
        "reason": loaded.location.reason,
        "config": effective_document(loaded),
        "provenance": loaded.provenance,
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()


def _toml_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    return json.dumps(value, ensure_ascii=False)


def render_text(loaded: LoadedConfig) -> str:
    """``key = value  # source`` for every leaf, in schema order."""
    lines = []
    for path, value in leaves(effective_document(loaded)):
        key = format_path(path)
        source = loaded.provenance.get(key, "default")
        lines.append(f"{key} = {_toml_value(value)}  # {source}")
    return "\n".join(lines)
