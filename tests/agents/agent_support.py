"""Shared pieces of the agent tests: a router on a real fake upstream, agents, a run collector."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx

from palyra.agents import AgentRuntime, RequestContext, RunEvent, ToolOutcome, default_registry
from palyra.config.agents import AgentConfig
from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.model import ToolSpec
from palyra.model.context import SYSTEM_DAEMON_PRINCIPAL
from palyra.routing.assembly import build_runtime
from palyra.testing import FakeUpstream

MCP_SERVER = Path(__file__).with_name("mcp_server.py")
KEY_ENV = "PALYRA_AGENT_TEST_KEY"
CRON = RequestContext(SYSTEM_DAEMON_PRINCIPAL, run_id="run-1", channel="cron")


def config_for(fake: FakeUpstream) -> PalyraConfig:
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="main",
            providers=[
                ProviderConfig(
                    id="up", kind="openai", base_url=fake.openai_base_url, api_key=f"env:{KEY_ENV}"
                )
            ],
            models=[
                ModelConfig(
                    id="main",
                    provider="up",
                    model="gpt-4o-mini",
                    capabilities=["chat", "tools"],
                )
            ],
            request_timeout_ms=5000,
            request_deadline_ms=10000,
        )
    )


def stdio_server(name: str = "tools", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(MCP_SERVER)],
        **extra,
    }


def agent(**fields: Any) -> AgentConfig:
    return AgentConfig.model_validate({"id": "ops", "model": "main", **fields})


class SlowTool:
    """A tool that sleeps: the run's time budget or a cancel must stop it."""

    allow_name = "slow"
    spec = ToolSpec(name="slow", parameters={"type": "object", "properties": {}})

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def call(self, arguments: Mapping[str, Any]) -> ToolOutcome:
        self.started.set()
        await asyncio.sleep(30)
        return ToolOutcome("woke up")


@asynccontextmanager
async def agent_runtime(
    fake: FakeUpstream, agents: list[AgentConfig], *, environ: Mapping[str, str] | None = None
) -> AsyncIterator[AgentRuntime]:
    tools = default_registry()
    tools.add(SlowTool())
    async with build_runtime(config_for(fake)) as runtime:
        yield AgentRuntime(runtime.router, agents, tools=tools, environ=environ)


async def collect(events: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in events]


def of_type(events: list[RunEvent], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == kind]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def http_mcp_server() -> AsyncIterator[str]:
    """The test MCP server on streamable HTTP on loopback; yields its /mcp URL."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited on
        [sys.executable, str(MCP_SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    await client.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the MCP test server did not start") from None
                    await asyncio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
