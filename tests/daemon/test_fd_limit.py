"""The daemon lifts its open-file limit: each stream holds two sockets."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import resource
from palyra.daemon.server.fd_limit import raise_open_file_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
print(raise_open_file_limit(wanted=4000), resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))
print(raise_open_file_limit(wanted=4000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def test_the_soft_limit_rises_towards_the_wanted_one_but_never_past_the_hard_one() -> None:
    # In a child: the limits are the process's own.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    raised, now, hard = (int(n) for n in out[0].split())
    expected = 4000 if hard == -1 else min(4000, hard)
    assert raised == now == expected
    assert out[1].split() == ["300", "300"]  # capped by the hard limit: left as it was
