"""``[storage]``: the database URL as :func:`palyra.store.open_store` checks it before opening,
and the shape of ``redis_url``, so ``palyra config check`` refuses what start-up would.

``redis_url`` is read by :class:`palyra.sharedstate.SharedStateLink`, which calls
:func:`redis_url_problem` too, so ``config check`` and start-up refuse the same URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from palyra.config.document import section, text
from palyra.config.problems import Finding
from palyra.store.engine import store_url_problem

REDIS_SCHEMES = ("redis", "rediss", "unix")
_REDIS_EXAMPLE = "write it like redis://127.0.0.1:6379/0 (rediss:// for TLS, unix:///path)"


def redis_url_problem(url: str) -> str | None:
    """Why ``url`` is not a Redis URL (``""`` means no Redis), or ``None``. Never echoes it: a
    Redis URL may carry a password."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        return f"redis_url cannot be parsed ({exc}); {_REDIS_EXAMPLE}"
    if parts.scheme not in REDIS_SCHEMES:
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        return f"redis_url has {shown}, not one of {', '.join(REDIS_SCHEMES)}; {_REDIS_EXAMPLE}"
    if parts.scheme == "unix":
        return None if parts.path else f"redis_url names no socket path; {_REDIS_EXAMPLE}"
    if not host:
        return f"redis_url names no host; {_REDIS_EXAMPLE}"
    database = parts.path.strip("/")
    if database and not database.isdigit():
        return f"redis_url's database (after the host) must be a number; {_REDIS_EXAMPLE}"
    if port == 0:
        return f"redis_url has port 0; {_REDIS_EXAMPLE}"
    return None


def check_storage(document: Mapping[str, Any]) -> list[Finding]:
    storage = section(document, "storage")
    findings = []
    url = text(storage, "url")
    if url is not None and (problem := store_url_problem(url)) is not None:
        findings.append(Finding(("storage", "url"), problem))
    redis = text(storage, "redis_url")
    if redis is not None and (problem := redis_url_problem(redis)) is not None:
        findings.append(Finding(("storage", "redis_url"), problem))
    return findings
