"""Writing ``agents.toml`` safely: validate the whole new file, write it beside the old one, fsync,
then rename over it. A crash at any point leaves either the old file or the new one, whole; never
a half-written file, and never one that lost the other agents.

The file is rewritten by ``tomli-w``: comments in a hand-edited ``agents.toml`` do not survive a
``palyra agents add|update|remove``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tomli_w

from palyra.config.agents import AgentConfig, AgentsFile, load_agents
from palyra.config.references import model_names
from palyra.config.schema import PalyraConfig


class AgentsEditError(ValueError):
    """The change would make ``agents.toml`` invalid; the message names the agent and the fix."""


def check_agents(agents: Sequence[AgentConfig], config: PalyraConfig) -> None:
    """Duplicate ids and unknown models, as ``load_agents`` would report them."""
    names = model_names({"model_provider": config.model_provider.model_dump()})
    seen: set[str] = set()
    for agent in agents:
        if agent.id in seen:
            raise AgentsEditError(f'agent id "{agent.id}" is already used; give each its own id')
        seen.add(agent.id)
        if agent.model not in names:
            known = ", ".join(m.id for m in config.model_provider.models) or "none"
            raise AgentsEditError(
                f'agent "{agent.id}" uses model "{agent.model}", which palyra.toml does not '
                f"define (known: {known})"
            )


def render_agents(agents: Sequence[AgentConfig]) -> str:
    document = AgentsFile(agents=list(agents)).model_dump(mode="json", exclude_defaults=True)
    return tomli_w.dumps({"version": 1, **document})


def write_agents(path: Path, agents: Sequence[AgentConfig], config: PalyraConfig) -> None:
    """Replace ``path`` with ``agents`` atomically (see the module docstring)."""
    check_agents(agents, config)
    text = render_agents(agents)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".agents.", suffix=".toml.tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # Read back through the loader: what lands is exactly what `palyra serve` will accept.
        load_agents(tmp, config, must_exist=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
