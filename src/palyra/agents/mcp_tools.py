"""MCP servers as tools, through the official ``mcp`` SDK: stdio (a child process) and streamable HTTP.

Each server configured on an agent is opened when a run starts and closed when it ends; its tools
are offered as ``server.tool`` (allowlist name) / ``server__tool`` (the model's name).
``env`` and ``headers`` values are secret references resolved here, never logged.

The SDK is imported when the first server is opened: with the server stack it pulls in
(OpenTelemetry, sse-starlette, its generated types) it was 15 MB of every daemon process's RSS,
also of those whose agents use no MCP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from palyra.agents.tools import Tool, ToolOutcome, model_name
from palyra.config.agents import McpServerConfig
from palyra.model import PalyraError, ToolSpec
from palyra.vault import Vault, resolve_secret_ref

if TYPE_CHECKING:
    import mcp_types
    from mcp import ClientSession


class McpUnavailable(Exception):
    """A configured MCP server could not be started, reached or listed; the message names it."""


class McpTool:
    """One tool of an open MCP session."""

    def __init__(
        self, server: McpServerConfig, session: ClientSession, tool: mcp_types.Tool
    ) -> None:
        self._server = server
        self._session = session
        self._name = tool.name
        self.allow_name = f"{server.name}.{tool.name}"
        schema = dict(tool.input_schema or {"type": "object", "properties": {}})
        schema.pop("title", None)
        self.spec = ToolSpec(
            name=model_name(self.allow_name), description=tool.description, parameters=schema
        )

    async def call(self, arguments: Mapping[str, Any]) -> ToolOutcome:
        result = await self._session.call_tool(
            self._name, dict(arguments), read_timeout_seconds=self._server.timeout_s
        )
        return ToolOutcome(_text_of(result.content), bool(result.is_error))


def _text_of(content: Sequence[Any]) -> str:
    pieces: list[str] = []
    for block in content:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            pieces.append(text)
        else:
            kind = getattr(block, "type", type(block).__name__)
            mime = getattr(block, "mime_type", None)
            pieces.append(f"[{kind}{' ' + mime if mime else ''}]")
    return "\n".join(pieces)


async def _resolved(
    server: McpServerConfig,
    what: str,
    refs: Mapping[str, str],
    vault: Vault | None,
    environ: Mapping[str, str] | None,
) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, ref in refs.items():
        try:
            values[key] = await resolve_secret_ref(ref, vault, environ=environ)
        except PalyraError as exc:
            raise McpUnavailable(
                f'MCP server "{server.name}": {what} {key}: {exc.envelope.message}'
            ) from None
    return values


async def _open_one(
    server: McpServerConfig,
    stack: contextlib.AsyncExitStack,
    vault: Vault | None,
    environ: Mapping[str, str] | None,
) -> list[Tool]:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    if server.transport == "stdio":
        assert server.command is not None
        env = await _resolved(server, "env", server.env, vault, environ)
        params = StdioServerParameters(
            command=server.command, args=server.args, env=env, cwd=server.cwd
        )
        # The child's stderr is dropped: it may print its environment (secrets) when it fails.
        errlog = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230 - no wait
        read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
        where = f"command {server.command!r}"
    else:
        assert server.url is not None
        headers = await _resolved(server, "header", server.headers, vault, environ)
        client = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        read, write = await stack.enter_async_context(
            streamable_http_client(server.url, http_client=client)
        )
        where = f"url {server.url}"
    session = await stack.enter_async_context(
        ClientSession(read, write, read_timeout_seconds=server.timeout_s)
    )
    try:
        async with asyncio.timeout(server.timeout_s):
            await session.initialize()
            listed = await session.list_tools()
    except TimeoutError:
        raise McpUnavailable(
            f'MCP server "{server.name}" ({where}) did not answer within {server.timeout_s:g}s'
        ) from None
    return [McpTool(server, session, t) for t in listed.tools]


async def open_mcp_tools(
    servers: Sequence[McpServerConfig],
    stack: contextlib.AsyncExitStack,
    *,
    vault: Vault | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Tool]:
    """Open every server (closed by ``stack``) and return their tools. Raises ``McpUnavailable``
    naming the first server that could not be used."""
    tools: list[Tool] = []
    for server in servers:
        inner = contextlib.AsyncExitStack()
        try:
            tools.extend(await _open_one(server, inner, vault, environ))
        except McpUnavailable:
            with contextlib.suppress(Exception):
                await inner.aclose()
            raise
        except Exception as exc:  # spawn errors, refused connections, protocol errors
            with contextlib.suppress(Exception):
                await inner.aclose()
            target = server.command if server.transport == "stdio" else server.url
            raise McpUnavailable(
                f'MCP server "{server.name}" ({server.transport}, {target}) could not be '
                f"used: {_describe(exc)}"
            ) from None
        await stack.enter_async_context(inner)
    return tools


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}{': ' + text if text else ''}"
