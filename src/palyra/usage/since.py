"""``--since`` / ``?since=``: a span back from now (``90m``, ``24h``, ``7d``) or a UTC date or
time (``2026-12-01``, ``2026-12-01T08:00:00Z``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_since(text: str, now: float) -> float:
    """Seconds since the epoch ``text`` names; ValueError with the accepted forms otherwise."""
    value = text.strip()
    span = _SPAN.match(value)
    if span:
        return now - float(span.group(1)) * _UNITS[span.group(2)]
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since {text!r} is neither a span (90m, 24h, 7d) nor a date or time "
            "(2026-12-01, 2026-12-01T08:00:00Z)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()
