"""``PALYRA_<SECTION>__<KEY>`` environment overrides, checked against the schema by name.

Only variables with ``__`` in the name are overrides, so ``PALYRA_CONFIG``, ``PALYRA_STATE_DIR``,
``PALYRA_VAULT_KEY`` and friends pass through untouched.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from palyra.config.problems import ConfigProblem, KeyPath, format_path
from palyra.config.schema import PalyraConfig

ENV_PREFIX = "PALYRA_"


@dataclass(frozen=True, slots=True)
class EnvOverride:
    variable: str
    path: tuple[str, ...]
    value: Any


def parse_env_value(raw: str) -> Any:
    """A TOML scalar, array or inline table when ``raw`` is one; otherwise the raw string."""
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw
    if list(parsed) != ["v"]:
        return raw
    return parsed["v"]


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _check_path(variable: str, path: tuple[str, ...]) -> ConfigProblem | None:
    """``None`` when ``path`` names a setting; else a problem naming the variable and the fix."""
    model: type[BaseModel] = PalyraConfig
    for depth, key in enumerate(path):
        fields = model.model_fields
        if key not in fields:
            where = format_path(path[:depth]) or "the top level"
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f'did you mean "{close[0]}"?' if close else "known: " + ", ".join(sorted(fields))
            return ConfigProblem(
                variable,
                None,
                format_path(path),
                f'unknown setting "{key}" in {where} ({hint}); rename or unset the variable',
            )
        if depth < len(path) - 1:
            sub = _section_model(fields[key].annotation)
            if sub is None:
                return ConfigProblem(
                    variable,
                    None,
                    format_path(path),
                    f"{format_path(path[: depth + 1])} is a single value, not a section; "
                    "rename or unset the variable",
                )
            model = sub
    return None


def parse_env_overrides(env: Mapping[str, str]) -> tuple[list[EnvOverride], list[ConfigProblem]]:
    """All overrides in ``env`` (sorted by name) and a problem for each unknown one."""
    overrides: list[EnvOverride] = []
    problems: list[ConfigProblem] = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or "__" not in variable:
            continue
        parts = variable[len(ENV_PREFIX) :].lower().split("__")
        path = tuple(parts)
        if any(not part for part in parts):
            problems.append(
                ConfigProblem(
                    variable,
                    None,
                    None,
                    "empty section or key in the name; use PALYRA_<SECTION>__<KEY>, "
                    "e.g. PALYRA_DAEMON__BIND",
                )
            )
            continue
        problem = _check_path(variable, path)
        if problem is not None:
            problems.append(problem)
            continue
        overrides.append(EnvOverride(variable, path, parse_env_value(env[variable])))
    return overrides, problems


def apply_overrides(document: dict[str, Any], overrides: list[EnvOverride]) -> dict[str, Any]:
    """A copy of ``document`` with each override set at its path (sections created as needed)."""
    result = dict(document)
    for override in overrides:
        node = result
        for key in override.path[:-1]:
            child = node.get(key)
            child = dict(child) if isinstance(child, dict) else {}
            node[key] = child
            node = child
        node[override.path[-1]] = override.value
    return result


def override_for(path: KeyPath, overrides: list[EnvOverride]) -> EnvOverride | None:
    """The override that set ``path`` or one of its parents, if any."""
    for override in overrides:
        if path[: len(override.path)] == override.path:
            return override
    return None
