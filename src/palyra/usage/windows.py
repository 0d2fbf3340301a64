"""Sliding-window and per-period counters for limits: the protocol, its pure arithmetic, and
the per-process implementation (:mod:`palyra.usage.redis_windows` shares them through Redis).

A sliding window of ``window_s`` is kept as two fixed buckets, the current one and the one
before; the window's total is the current bucket plus the previous one weighted by how much of
it still lies within the last ``window_s``. That is O(1) in time and memory per key, whatever
the rate, and it never under-counts a steady rate.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol


class Taken(NamedTuple):
    """A window check: admitted or not, the total seen, and (refused) how long until it would
    be admitted."""

    admitted: bool
    total: float
    retry_after_s: float


def bucket_of(now: float, window_s: float) -> int:
    return math.floor(now / window_s)


def weighted_total(prev: float, curr: float, now: float, window_s: float) -> float:
    """The sliding window's total from its two buckets at ``now``."""
    elapsed = (now % window_s) / window_s
    return prev * (1.0 - elapsed) + curr


def wait_below(prev: float, curr: float, now: float, window_s: float, limit: float) -> float:
    """Seconds from ``now`` until the window's total drops below ``limit`` (0 if it is)."""
    elapsed = (now % window_s) / window_s
    if prev * (1.0 - elapsed) + curr < limit:
        return 0.0
    if curr < limit and prev > 0:
        # Within this bucket: prev * (1 - e) + curr < limit once e > 1 - (limit - curr) / prev.
        needed = 1.0 - (limit - curr) / prev
        if needed < 1.0:
            return max(0.0, (needed - elapsed) * window_s) + 1e-3
    # In the next bucket this one becomes the previous: curr * (1 - e) < limit.
    later = 0.0 if curr < limit else 1.0 - limit / curr if curr > 0 else 0.0
    return (1.0 - elapsed + later) * window_s + 1e-3


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
        self._windows: dict[str, list[float]] = {}  # key -> [bucket, prev, curr]
        self._periods: dict[str, tuple[int, float]] = {}  # key -> (total, expires_at)

    def _slot(self, key: str, now: float, window_s: float) -> list[float]:
        bucket = bucket_of(now, window_s)
        slot = self._windows.get(key)
        if slot is None:
            if len(self._windows) >= self.MAX_KEYS:
                self._windows.clear()
            slot = self._windows[key] = [bucket, 0.0, 0.0]
        elif slot[0] != bucket:
            slot[1] = slot[2] if slot[0] == bucket - 1 else 0.0
            slot[2] = 0.0
            slot[0] = bucket
        return slot

    def take_now(self, key: str, limit: int, add: int, now: float, window_s: float) -> Taken:
        slot = self._slot(key, now, window_s)
        total = weighted_total(slot[1], slot[2], now, window_s)
        if total < limit:
            slot[2] += add
            return Taken(True, total + add, 0.0)
        return Taken(False, total, wait_below(slot[1], slot[2], now, window_s, limit))

    def add_now(self, key: str, amount: int, now: float, window_s: float) -> None:
        self._slot(key, now, window_s)[2] += amount

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
