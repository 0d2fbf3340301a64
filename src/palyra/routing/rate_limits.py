"""How much rate limit an upstream says a credential has left, read from its answer headers.

OpenAI (and most OpenAI-compatible servers) send ``x-ratelimit-{limit,remaining,reset}-
{requests,tokens}``, the reset as a duration (``6ms``, ``17.5s``, ``1m0s``); Anthropic sends
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``,
the reset as an RFC 3339 time. The share left is the tightest of the kinds that give both a
limit and a remaining count. Pure: the caller passes the wall-clock time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

_OPENAI_KINDS = ("requests", "tokens")
_ANTHROPIC_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
    r"(?:(\d+(?:\.\d+)?)ms)?"
)
DEFAULT_RESET_S = 60.0
"""How long a reading counts when the upstream says nothing about its reset."""


@dataclass(frozen=True, slots=True)
class RateLimitReading:
    """The share of the tightest limit left (0..1), which kind that is, and in how many seconds
    it resets (then the reading no longer holds)."""

    share: float
    kind: str
    remaining: int
    limit: int
    reset_s: float


def parse_duration(text: str) -> float | None:
    """``1m0s`` -> 60.0, ``17.5s`` -> 17.5, ``6ms`` -> 0.006; None when it is not one."""
    text = text.strip()
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _number(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _reset_s(value: str | None, wall_now: float) -> float | None:
    if value is None:
        return None
    duration = parse_duration(value)
    if duration is not None:
        return duration
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return max(0.0, at.timestamp() - wall_now)


def read_rate_limits(headers: Mapping[str, str], wall_now: float) -> RateLimitReading | None:
    """The tightest limit the headers report (names lowercased), or None when they report none."""
    found: list[RateLimitReading] = []
    for prefix, kinds, pattern in (
        ("x-ratelimit-", _OPENAI_KINDS, "{prefix}{field}-{kind}"),
        ("anthropic-ratelimit-", _ANTHROPIC_KINDS, "{prefix}{kind}-{field}"),
    ):
        for kind in kinds:

            def name(
                field: str, prefix: str = prefix, kind: str = kind, pattern: str = pattern
            ) -> str:
                return pattern.format(prefix=prefix, field=field, kind=kind)

            limit = _number(headers, name("limit"))
            remaining = _number(headers, name("remaining"))
            if limit is None or remaining is None or limit <= 0:
                continue
            reset = _reset_s(headers.get(name("reset")), wall_now)
            share = min(1.0, max(0.0, remaining / limit))
            found.append(
                RateLimitReading(
                    share, kind, remaining, limit, DEFAULT_RESET_S if reset is None else reset
                )
            )
    if not found:
        return None
    return min(found, key=lambda r: r.share)
