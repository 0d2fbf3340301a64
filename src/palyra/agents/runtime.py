"""``AgentRuntime``: finds an agent in ``agents.toml``, opens its tools, and streams one run.

It is what the scheduler, the console and the CLI call; they hand it a ``RequestContext`` (the
scheduler's carries ``SYSTEM_DAEMON_PRINCIPAL``). The agent's ``auth_profile_id`` applies when the
context names none, and the context always names the agent, so the router picks that agent's
profiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from palyra.agents.builtin_tools import CalculateTool, CurrentTimeTool
from palyra.agents.events import RUN_FAILED, RunEvent
from palyra.agents.mcp_tools import McpUnavailable, open_mcp_tools
from palyra.agents.run_stream import RunStream
from palyra.agents.tools import Tool, ToolRegistry, allowed
from palyra.config.agents import AgentConfig, agents_path, load_agents
from palyra.config.problems import ConfigError
from palyra.config.schema import PalyraConfig
from palyra.model import FailureClass
from palyra.model.context import RequestContext
from palyra.routing.router import Router
from palyra.usage.metering import Metering
from palyra.vault import Vault

AgentSource = Callable[[], Sequence[AgentConfig]]


def default_registry(wall_clock: Callable[[], float] = time.time) -> ToolRegistry:
    """The built-ins plus every tool installed under the ``palyra.tools`` entry point group."""
    registry = ToolRegistry([CurrentTimeTool(wall_clock), CalculateTool()])
    registry.load_entry_points()
    return registry


def _failed(reason: str, category: FailureClass, message: str) -> RunEvent:
    return RunEvent(
        RUN_FAILED,
        {
            "reason": reason,
            "error_category": category.value,
            "message": message,
            "usage": {"input_tokens": 0, "output_tokens": 0},
            "turns": 0,
        },
    )


class AgentRuntime:
    """Runs agents through one router. ``agents`` is read again at every run, so an edit of
    ``agents.toml`` applies to the next run without a restart."""

    def __init__(
        self,
        router: Router,
        agents: AgentSource | Sequence[AgentConfig],
        *,
        tools: ToolRegistry | None = None,
        vault: Vault | None = None,
        environ: Mapping[str, str] | None = None,
        wall_clock: Callable[[], float] = time.time,
        metering: Metering | None = None,
    ) -> None:
        self.router = router
        self.metering = metering
        self._agents: AgentSource = agents if callable(agents) else (lambda: list(agents))
        self.tools = tools if tools is not None else default_registry(wall_clock)
        self._vault = vault
        self._environ = environ
        self._wall = wall_clock

    @classmethod
    def from_state_dir(
        cls, router: Router, config: PalyraConfig, state_dir: Path, **options: Any
    ) -> AgentRuntime:
        path = agents_path(state_dir)
        return cls(router, lambda: load_agents(path, config), **options)

    def agents(self) -> list[AgentConfig]:
        return list(self._agents())

    def agent(self, agent_id: str) -> AgentConfig | None:
        return next((a for a in self._agents() if a.id == agent_id), None)

    async def run(
        self,
        agent_id: str,
        prompt: str,
        context: RequestContext,
        *,
        cancel: asyncio.Event | None = None,
    ) -> AsyncIterator[RunEvent]:
        """The run's events; the last one is terminal. Never raises for a bad agent, tool
        server or upstream: those end the run with ``run_failed`` and the reason."""
        try:
            agent = self.agent(agent_id)
        except ConfigError as exc:
            yield _failed("config_error", FailureClass.CONFIG, str(exc))
            return
        if agent is None:
            yield _failed(
                "unknown_agent",
                FailureClass.CONFIG,
                f'no agent "{agent_id}" in agents.toml; see: palyra agents list',
            )
            return
        context = dataclasses.replace(
            context,
            agent_id=agent.id,
            auth_profile_id=context.auth_profile_id or agent.auth_profile_id,
            task=context.task or agent.task_class,
        )
        async with contextlib.AsyncExitStack() as stack:
            tools: list[Tool] = self.tools.pick(agent.tools)
            try:
                for tool in await open_mcp_tools(
                    agent.mcp_servers, stack, vault=self._vault, environ=self._environ
                ):
                    if allowed(tool.allow_name, agent.tools):
                        tools.append(tool)
            except McpUnavailable as exc:
                yield _failed("tool_server_unavailable", FailureClass.CONNECTION, str(exc))
                return
            stream = RunStream(
                self.router,
                agent,
                prompt,
                context,
                tools,
                cancel=cancel,
                wall_clock=self._wall,
                metering=self.metering,
            )
            async for event in stream:
                yield event
