"""Sliding-window and per-period counters for limits: the protocol, its pure arithmetic, and
the per-process implementation (:mod:`palyra.usage.redis_windows` shares them through Redis).

A sliding window of ``window_s`` seconds is kept as per-second counts: the window's total is the
sum of the counts of its last ``window_s`` whole seconds, so a burst is counted in full until it
is a window old (never a weighted guess), at most ``window_s`` numbers per key whatever the rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple, Protocol


class Taken(NamedTuple):
    """A window check: admitted or not, the total seen, and (refused) how long until it would
    be admitted."""

    admitted: bool
    total: float
    retry_after_s: float


def second_of(now: float) -> int:
    return math.floor(now)


def live(second: int, now: float, window_s: float) -> bool:
    """Whether the count of ``second`` still lies within the window ending at ``now``."""
    return second > second_of(now) - window_s


def wait_below(
    counts: Iterable[tuple[int, float]], now: float, window_s: float, limit: float
) -> float:
    """Seconds from ``now`` until the live ``counts`` (second, amount; oldest first) add up
    to less than ``limit``: each count leaves the window ``window_s`` after its second."""
    live_counts = [(sec, n) for sec, n in counts if live(sec, now, window_s)]
    total = sum(n for _, n in live_counts)
    for sec, n in live_counts:
        if total < limit:
            break
        total -= n
        if total < limit:
            return max(0.001, sec + window_s - now)
    return 0.0 if total < limit else window_s


class Windows(Protocol):
    """Counters the limits of one principal live in; shared between processes or not."""

    async def take(self, key: str, limit: int, add: int, now: float, window_s: float) -> Taken:
        """Admit when the window's total is below ``limit``, then add ``add`` to it; one atomic
        step, so two processes cannot both take the last slot."""
        ...

    async def add(self, key: str, amount: int, now: float, window_s: float) -> None:
        """Count ``amount`` in the window (tokens, once an answer reported them)."""
        ...

    async def period_total(self, key: str) -> int | None:
        """A budget period's total, or None when this store has not seen the period yet."""
        ...

    async def period_seed(self, key: str, value: int, expires_at: float) -> int:
        """Start a period at ``value`` unless it is known already; its total after."""
        ...

    async def period_add(self, key: str, amount: int, expires_at: float) -> int:
        """Add to a budget period; its total after."""
        ...


class MemoryWindows:
    """:class:`Windows` in this process's memory (no Redis, or Redis unreachable)."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        # key -> (per-second counts, oldest first; their running total)
        self._windows: dict[str, tuple[deque[list[float]], list[float]]] = {}
        self._periods: dict[str, tuple[int, float]] = {}  # key -> (total, expires_at)

    def _window(
        self, key: str, now: float, window_s: float
    ) -> tuple[deque[list[float]], list[float]]:
        found = self._windows.get(key)
        if found is None:
            if len(self._windows) >= self.MAX_KEYS:
                self._windows.clear()
            found = self._windows[key] = (deque(), [0.0])
        counts, total = found
        while counts and not live(int(counts[0][0]), now, window_s):
            total[0] -= counts.popleft()[1]
        return found

    def _count(self, key: str, amount: float, now: float, window_s: float) -> None:
        counts, total = self._window(key, now, window_s)
        second = second_of(now)
        if counts and counts[-1][0] == second:
            counts[-1][1] += amount
        else:
            counts.append([second, amount])
        total[0] += amount

    def take_now(self, key: str, limit: int, add: int, now: float, window_s: float) -> Taken:
        counts, total = self._window(key, now, window_s)
        seen = total[0]
        if seen < limit:
            if add:
                self._count(key, add, now, window_s)
            return Taken(True, seen, 0.0)
        pairs = [(int(sec), n) for sec, n in counts]
        return Taken(False, total[0], wait_below(pairs, now, window_s, limit))

    def add_now(self, key: str, amount: int, now: float, window_s: float) -> None:
        self._count(key, amount, now, window_s)

    def period_add_now(self, key: str, amount: int, expires_at: float) -> int:
        total, _ = self._periods.get(key, (0, expires_at))
        self._periods[key] = (total + amount, expires_at)
        return total + amount

    async def take(self, key: str, limit: int, add: int, now: float, window_s: float) -> Taken:
        return self.take_now(key, limit, add, now, window_s)

    async def add(self, key: str, amount: int, now: float, window_s: float) -> None:
        self.add_now(key, amount, now, window_s)

    async def period_total(self, key: str) -> int | None:
        found = self._periods.get(key)
        return None if found is None else found[0]

    async def period_seed(self, key: str, value: int, expires_at: float) -> int:
        found = self._periods.get(key)
        if found is not None:
            return found[0]
        self._periods[key] = (value, expires_at)
        return value

    async def period_add(self, key: str, amount: int, expires_at: float) -> int:
        return self.period_add_now(key, amount, expires_at)
