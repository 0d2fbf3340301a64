"""Tools an agent may call: the protocol, the outcome, and the registry an agent's allowlist picks from.

Model-facing names follow the OpenAI/Anthropic rule (``[A-Za-z0-9_-]{1,64}``); allowlist names are
the tool's own (``current_time``) or ``server.tool`` for an MCP server's tool (``server.*`` allows
all of that server's tools).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from palyra.model import ToolSpec

ENTRY_POINT_GROUP = "palyra.tools"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a call returned: text for the model, and whether it is an error."""

    content: str
    is_error: bool = False


@runtime_checkable
class Tool(Protocol):
    """A callable tool. ``allow_name`` is what an allowlist names; ``spec.name`` what the model sees."""

    @property
    def allow_name(self) -> str: ...

    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: Mapping[str, Any]) -> ToolOutcome: ...


def model_name(allow_name: str) -> str:
    """``server.tool`` -> ``server__tool``: a name every provider accepts, still readable."""
    return _UNSAFE.sub("_", allow_name.replace(".", "__"))[:64]


def allowed(allow_name: str, allowlist: Iterable[str]) -> bool:
    """Exact name, or ``server.*`` for every tool of one MCP server."""
    for entry in allowlist:
        if entry == allow_name:
            return True
        if entry.endswith(".*") and allow_name.startswith(entry[:-1]):
            return True
    return False


class ToolRegistry:
    """Tools known to this process by allowlist name (built-ins, entry points, tests' own)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.allow_name in self._tools:
            raise ValueError(f'a tool named "{tool.allow_name}" is already registered')
        self._tools[tool.allow_name] = tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def get(self, allow_name: str) -> Tool | None:
        return self._tools.get(allow_name)

    def pick(self, allowlist: Iterable[str]) -> list[Tool]:
        allow = list(allowlist)
        return [t for name, t in sorted(self._tools.items()) if allowed(name, allow)]

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Add every tool installed under ``group``: an entry point names a ``Tool`` object or a
        zero-argument factory returning one. One that fails to load is logged and left out."""
        problems: list[str] = []
        for ep in entry_points(group=group):
            try:
                loaded = ep.load()
                tool = loaded() if not isinstance(loaded, Tool) and callable(loaded) else loaded
                if not isinstance(tool, Tool):
                    raise TypeError(f"{ep.value} is not a palyra tool (allow_name, spec, call)")
                self.add(tool)
            except Exception as exc:  # an installed plugin must not stop the daemon
                problem = f'tool entry point "{ep.name}" ({ep.value}): {type(exc).__name__}: {exc}'
                log.warning("%s", problem)
                problems.append(problem)
        return problems
