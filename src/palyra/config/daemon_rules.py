"""``[daemon]`` values that ``palyra serve`` parses itself, checked here with the same function
so ``palyra config check`` refuses what start-up would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palyra.config.document import section, text
from palyra.config.problems import Finding


def split_bind(bind: str) -> tuple[str, int] | str:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) as ``(host, port)``, or why it is not one."""
    host, sep, port = bind.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"bind address {bind!r} is not HOST:PORT; use e.g. 127.0.0.1:7142 or [::1]:7142"
    return host, int(port)


def check_daemon(document: Mapping[str, Any]) -> list[Finding]:
    bind = text(section(document, "daemon"), "bind")
    if bind is None:
        return []
    split = split_bind(bind)
    return [Finding(("daemon", "bind"), split)] if isinstance(split, str) else []
