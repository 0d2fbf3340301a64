"""Agents: runs of a configured agent through the router, with tools (built-in, entry points, MCP)."""

from palyra.agents.events import RunEvent, UsageTotals
from palyra.agents.run_stream import RunLimits, RunStream
from palyra.agents.runtime import AgentRuntime, default_registry
from palyra.agents.tools import Tool, ToolOutcome, ToolRegistry
from palyra.model.context import SYSTEM_DAEMON_PRINCIPAL, Principal, RequestContext

__all__ = [
    "SYSTEM_DAEMON_PRINCIPAL",
    "AgentRuntime",
    "Principal",
    "RequestContext",
    "RunEvent",
    "RunLimits",
    "RunStream",
    "Tool",
    "ToolOutcome",
    "ToolRegistry",
    "UsageTotals",
    "default_registry",
]
