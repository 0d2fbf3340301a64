"""``AgentTasks``: the task class an agent declares in agents.toml, for requests made with a
client token bound to that agent (``palyra token create --agent``).

Only a request to a ``task`` routing group that carries no ``x-palyra-task`` header asks, so a
plain model never reads the file. The file is read again only when it changed (its size and
modification time), and a broken or missing file reads as "no task" (the agents commands
report its problems).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from palyra.config.agents import agents_path, load_agents
from palyra.config.problems import ConfigError
from palyra.config.schema import PalyraConfig
from palyra.model.context import TaskClass

log = logging.getLogger("palyra.daemon")


class AgentTasks:
    """``agent id -> task class`` from agents.toml in ``state_dir()`` (read when it changes)."""

    def __init__(self, state_dir: Callable[[], Path], config: PalyraConfig) -> None:
        self._state_dir = state_dir
        self._config = config
        self._seen: tuple[int, int] | None = None
        self._tasks: dict[str, TaskClass] = {}

    def __call__(self, agent_id: str) -> TaskClass | None:
        path = agents_path(self._state_dir())
        try:
            stat = path.stat()
        except OSError:
            return None
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            try:
                agents = load_agents(path, self._config)
            except ConfigError as exc:
                log.warning("agents.toml is not valid, so agents declare no task: %s", exc)
                agents = []
            self._tasks = {a.id: a.task_class for a in agents if a.task_class is not None}
            self._seen = seen
        return self._tasks.get(agent_id)
