"""A real MCP server for the agent tests, built with the ``mcp`` SDK's ``MCPServer`` (FastMCP).

``python mcp_server.py`` serves stdio; ``python mcp_server.py http PORT`` serves streamable HTTP
on 127.0.0.1:PORT at /mcp. ``MCP_TEST_TOKEN`` (from the agent's env secret ref) is echoed back
as a hash by ``whoami`` so a test sees the secret arrived without printing it.
"""

from __future__ import annotations

import hashlib
import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("palyra-test-tools")


@server.tool()
def reverse(text: str) -> str:
    """Reverse a piece of text."""
    return text[::-1]


@server.tool()
def whoami() -> str:
    """A digest of the token this server was started with."""
    token = os.environ.get("MCP_TEST_TOKEN", "")
    return "token-sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


@server.tool()
def wipe(target: str) -> str:
    """A destructive tool the tests mark as needing approval; it must never run unattended."""
    marker = os.environ.get("MCP_WIPE_MARKER")
    if marker:
        with open(marker, "w") as handle:
            handle.write(target)
    return f"wiped {target}"


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
