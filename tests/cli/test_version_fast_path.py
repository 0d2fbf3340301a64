"""``palyra version`` answers before the CLI framework and the sub-commands are imported."""

from __future__ import annotations

import subprocess
import sys

from palyra import __version__

SCRIPT = """
import sys
from palyra.cli.main import main
sys.argv = ["palyra", sys.argv[1]]
main()
print(sorted(m for m in ("typer", "palyra.cli.app", "palyra.daemon") if m in sys.modules))
"""


def test_version_is_printed_without_loading_typer_or_the_daemon() -> None:
    for flag in ("version", "--version"):
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, flag], capture_output=True, text=True, check=True
        )
        assert out.stdout.splitlines() == [__version__, "[]"]
