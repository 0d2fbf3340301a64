"""Cheap timeouts: many deadlines on one event loop served by a few loop timers.

Almost every timeout the daemon arms (a read deadline, an attempt budget) is cancelled long
before it fires, yet ``loop.call_later`` and ``asyncio.timeout`` create and then cancel a
libuv timer for each one (about 2-4 us of CPU). Here a deadline is rounded *up* to a tick of
``resolution_s`` and filed in that tick's bucket (a dict); only the earliest bucket holds a
real loop timer. Arming is a dict insert, cancelling a dict delete, and a loop timer is created
only when a bucket earlier than every other one opens (about once per tick).

An entry never fires before its deadline (give or take the loop's own timer rounding) and at
most ``resolution_s`` after it. Entries of one bucket fire in the order they were armed.

:func:`timeout` and :func:`timeout_at` are ``asyncio.timeout`` and ``asyncio.timeout_at`` on
these timers, with the same semantics.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import os
import weakref
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Any, final

DEFAULT_RESOLUTION_S = 0.025
# Buckets emptied by cancellation stay until their tick passes (so the next entry for the same
# tick reuses them); past this many more than were live at the last sweep, empty ones are swept.
_SPARE_BUCKETS = 64
_NOT_ARMED = math.inf

Key = Hashable
Bucket = dict[Key, Callable[[Any], object]]


class CoarseTimers:
    """The coarse timers of one event loop (get them with :func:`timers_for`).

    An entry is a ``key`` (hashable, armed at most once at a time: futures and other objects
    compared by identity suit) and a ``callback`` called as ``callback(key)``. :meth:`arm_at`
    returns a token; :meth:`cancel` with that token and the key disarms the entry in O(1), and
    does nothing once it fired or was cancelled. No handle object is made per entry: arming and
    cancelling cost a dict insert and a dict delete.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, resolution_s: float = DEFAULT_RESOLUTION_S
    ) -> None:
        if not resolution_s > 0:
            raise ValueError(f"resolution_s must be positive, not {resolution_s!r}")
        self.resolution_s = resolution_s
        self._per_second = 1.0 / resolution_s
        self._loop = loop
        self._buckets: dict[int, Bucket] = {}  # tick -> its entries (maybe none, see sweep)
        self._ticks: list[int] = []  # a heap of the ticks in _buckets
        self._sweep_at = _SPARE_BUCKETS
        self._armed: asyncio.TimerHandle | None = None
        self._armed_tick: float = _NOT_ARMED

    def __len__(self) -> int:
        """Entries armed and not yet fired or cancelled (an infinite deadline is filed nowhere
        and not counted)."""
        return sum(len(bucket) for bucket in self._buckets.values())

    @property
    def loop_timers(self) -> int:
        """Real loop timers armed now: 0 or 1."""
        return 0 if self._armed is None else 1

    @property
    def buckets(self) -> int:
        """Buckets kept (with entries or emptied ones not yet swept): for tests and diagnostics."""
        return len(self._buckets)

    @property
    def queued_ticks(self) -> int:
        """Ticks in the heap (one per kept bucket): for tests and diagnostics."""
        return len(self._ticks)

    def arm(self, delay: float, key: Key, callback: Callable[[Any], object]) -> Bucket:
        """``callback(key)`` about ``delay`` seconds from now (never sooner); returns the token."""
        return self.arm_at(self._loop.time() + delay, key, callback)

    def arm_at(self, when: float, key: Key, callback: Callable[[Any], object]) -> Bucket:
        """``callback(key)`` at loop time ``when`` rounded up to a tick; returns the token."""
        try:
            tick = math.ceil(when * self._per_second)
        except (OverflowError, ValueError):
            return {key: callback}  # an infinite (or NaN) deadline: filed nowhere, never due
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._open(tick)
        bucket[key] = callback
        return bucket

    @staticmethod
    def cancel(token: Bucket, key: Key) -> None:
        """Disarm ``key`` armed with ``token``; a no-op once it fired or was cancelled."""
        token.pop(key, None)

    def tick_of(self, when: float) -> int:
        """The tick a deadline at loop time ``when`` is filed under (it fires at tick x resolution)."""
        return math.ceil(when * self._per_second)

    def _open(self, tick: int) -> Bucket:
        if len(self._buckets) >= self._sweep_at:
            self._sweep()
        bucket: Bucket = {}
        self._buckets[tick] = bucket
        heapq.heappush(self._ticks, tick)
        if tick < self._armed_tick:
            self._arm(tick)
        return bucket

    def _sweep(self) -> None:
        """Drop emptied buckets: amortised O(1) per bucket opened, and bounded memory."""
        self._buckets = {tick: bucket for tick, bucket in self._buckets.items() if bucket}
        self._ticks[:] = sorted(self._buckets)  # a sorted list is a heap
        self._sweep_at = 2 * len(self._buckets) + _SPARE_BUCKETS

    def _arm(self, tick: int) -> None:
        if self._armed is not None:
            self._armed.cancel()
        self._armed_tick = tick
        self._armed = self._loop.call_at(tick * self.resolution_s, self._fire, tick)

    def _fire(self, armed_tick: int) -> None:
        self._armed = None
        self._armed_tick = -1  # callbacks that arm entries must not arm the loop meanwhile
        due = max(armed_tick, math.floor(self._loop.time() * self._per_second))
        ticks = self._ticks
        # Take the due buckets first: an entry a callback arms for a tick already due waits for
        # the loop's next turn (as a past call_at would) instead of running in this pass.
        buckets = []
        while ticks and ticks[0] <= due:
            buckets.append(self._buckets.pop(heapq.heappop(ticks)))
        try:
            for bucket in buckets:
                if bucket:
                    self._run(bucket)
        finally:
            self._armed_tick = _NOT_ARMED
            self._arm_next()

    def _arm_next(self) -> None:
        ticks = self._ticks
        while ticks and not self._buckets[ticks[0]]:
            del self._buckets[heapq.heappop(ticks)]  # emptied: nothing to wake up for
        if ticks:
            self._arm(ticks[0])

    def _run(self, bucket: Bucket) -> None:
        for key in list(bucket):
            callback = bucket.pop(key, None)
            if callback is None:
                continue  # cancelled by an earlier callback of this bucket
            try:
                callback(key)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler(
                    {
                        "message": f"Exception in coarse timer callback {callback!r}",
                        "exception": exc,
                    }
                )


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CoarseTimers] = (
    weakref.WeakKeyDictionary()
)
# The last loop asked about and its timers: one identity test instead of a weak-dict lookup.
_last: tuple[asyncio.AbstractEventLoop, CoarseTimers] | None = None


def timers_for(loop: asyncio.AbstractEventLoop | None = None) -> CoarseTimers:
    """The coarse timers of ``loop`` (default: the running loop), made on first use."""
    global _last
    if loop is None:
        loop = asyncio.get_running_loop()
    last = _last
    if last is not None and last[0] is loop:
        return last[1]
    timers = _by_loop.get(loop)
    if timers is None:
        timers = _by_loop[loop] = CoarseTimers(loop)
    _last = (loop, timers)
    return timers


def _forget_loops() -> None:
    """In a forked child: its loops start over, so they start with fresh timers."""
    global _last
    _last = None
    _by_loop.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_loops)


_CREATED = "created"
_ENTERED = "active"
_EXPIRING = "expiring"
_EXPIRED = "expired"
_EXITED = "finished"


@final
class Timeout:
    """``asyncio.Timeout`` on coarse timers: on expiry the task is cancelled, and leaving the
    block turns that cancellation (and only that one) into ``TimeoutError``.

    Use :func:`timeout` or :func:`timeout_at`.
    """

    __slots__ = ("_cancelling", "_soon", "_state", "_task", "_token", "_when")

    def __init__(self, when: float | None) -> None:
        self._state = _CREATED
        self._token: Bucket | None = None  # armed on the coarse timers
        self._soon: asyncio.Handle | None = None  # or, for a deadline already past, this
        self._task: asyncio.Task[Any] | None = None
        self._when = when
        self._cancelling = 0

    def when(self) -> float | None:
        """The current deadline (loop time), or ``None`` for none."""
        return self._when

    def reschedule(self, when: float | None) -> None:
        """Move the deadline; ``None`` removes it, a past one expires on the next loop turn."""
        if self._state is not _ENTERED:
            if self._state is _CREATED:
                raise RuntimeError("Timeout has not been entered")
            raise RuntimeError(f"Cannot change state of {self._state} Timeout")
        self._when = when
        self._disarm()
        if when is None:
            return
        loop = asyncio.get_running_loop()
        if when <= loop.time():
            self._soon = loop.call_soon(self._on_timeout)
        else:
            self._token = timers_for(loop).arm_at(when, self, Timeout._on_timeout)

    def expired(self) -> bool:
        """Whether the deadline passed while the block ran."""
        return self._state is _EXPIRING or self._state is _EXPIRED

    def __repr__(self) -> str:
        shown = ""
        if self._state is _ENTERED:
            when = round(self._when, 3) if self._when is not None else None
            shown = f" when={when}"
        return f"<Timeout [{self._state}]{shown}>"

    async def __aenter__(self) -> Timeout:
        if self._state is not _CREATED:
            raise RuntimeError("Timeout has already been entered")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        self._state = _ENTERED
        self._task = task
        self._cancelling = task.cancelling()
        self.reschedule(self._when)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self._disarm()
        if self._state is _EXPIRING:
            self._state = _EXPIRED
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                # No other cancellation arrived meanwhile: this one was ours.
                raise TimeoutError from exc_val
        elif self._state is _ENTERED:
            self._state = _EXITED

    def _disarm(self) -> None:
        token = self._token
        if token is not None:
            self._token = None
            token.pop(self, None)
        soon = self._soon
        if soon is not None:
            self._soon = None
            soon.cancel()

    def _on_timeout(self) -> None:
        assert self._state is _ENTERED and self._task is not None
        self._task.cancel()
        self._state = _EXPIRING
        self._token = None
        self._soon = None


def timeout(delay: float | None) -> Timeout:
    """``asyncio.timeout(delay)`` on coarse timers (``None``: no deadline)."""
    if delay is None:
        return Timeout(None)
    return Timeout(asyncio.get_running_loop().time() + delay)


def timeout_at(when: float | None) -> Timeout:
    """``asyncio.timeout_at(when)`` on coarse timers; ``when`` is in loop time."""
    return Timeout(when)
