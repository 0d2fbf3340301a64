"""The MCP SDK costs a daemon 15 MB of RSS; a daemon whose agents use no MCP server never loads it."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import palyra.daemon.app, palyra.agents.runtime
print(sorted(m for m in ("mcp", "mcp_types") if m in sys.modules))
from palyra.agents.mcp_tools import open_mcp_tools
"""


def test_the_daemon_imports_without_the_mcp_sdk() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
