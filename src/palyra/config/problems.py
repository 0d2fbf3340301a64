"""Config problems: what is wrong, where (file, line, key) and how to fix it, all at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]
"""A dotted key path into the config document; ints index arrays (``models[2]``)."""


def format_path(path: Sequence[str | int]) -> str:
    """``("model_provider", "models", 2, "id")`` -> ``model_provider.models[2].id``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found by a pure check, before it is mapped to a file and line."""

    path: KeyPath
    message: str


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem a user must fix. Messages never contain secret values."""

    file: str | None
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [p for p in (where, self.key) if p]
        return ": ".join([*parts, self.message])


class ConfigError(Exception):
    """Every problem in a config at once, so the user fixes them in one pass."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
