"""The open-file limit a daemon holding thousands of streams needs.

Every proxied stream holds two sockets (the client's and the upstream's), so the usual soft
limit of 1024 descriptors refuses connections at about 500 concurrent streams while the hard
limit, which an unprivileged process may raise its soft limit to, is often far higher.
"""

from __future__ import annotations

import resource

WANTED_OPEN_FILES = 65536
LOW_OPEN_FILES = 4096


def raise_open_file_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Lift the soft ``RLIMIT_NOFILE`` towards ``wanted`` (never past the hard limit, never
    down); the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft
