"""Injected time: a real monotonic clock, and a manual one whose sleeps and timeouts are simulated.

Routing never reads the wall clock itself, so breakers, backoff, leases and deadlines can be
tested on simulated time without sleeping for real.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol

from palyra.providers.upstream import coarse_timers


class Clock(Protocol):
    """Monotonic seconds, sleeping, and a timeout scope that raises ``TimeoutError``."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]: ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``asyncio.sleep``, and ``asyncio.timeout``'s semantics
    on coarse timers (see :meth:`timeout`)."""

    # ``time.monotonic`` itself, not a method around it: read several times per request, and a
    # Python-level call costs more than the read.
    now = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """``asyncio.timeout`` on :mod:`palyra.providers.upstream.coarse_timers`: an attempt's budget is
        seconds long and nearly always ends long before it fires, while ``asyncio.timeout`` arms
        and cancels a libuv timer per attempt. It fires no earlier than asked, at most one
        resolution tick (25 ms) later."""
        return coarse_timers.timeout(max(0.0, seconds))


class WallClock(SystemClock):
    """The real clock on wall-clock seconds (``time.time``): for state that replicas share, whose
    cooldown ends must mean the same moment in every process (keep their clocks in sync, NTP)."""

    now = staticmethod(time.time)


class ManualClock:
    """Simulated time for tests.

    ``sleep`` advances time at once (but never past the sleeping task's own innermost timeout,
    which then fires); ``advance`` moves time forward from outside and fires every timeout it
    passes by cancelling the task inside it, exactly as ``asyncio.timeout`` would.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._scopes: list[_ManualTimeout] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        target = self._now + max(0.0, seconds)
        task = asyncio.current_task()
        own = [s for s in self._scopes if s.task is task and not s.expired]
        self._advance_to(min([target, *(s.deadline for s in own)]))
        if any(s.expired for s in own):
            raise TimeoutError
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move time forward from outside any timeout scope (e.g. the test body)."""
        self._advance_to(self._now + max(0.0, seconds))

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return _ManualTimeout(self, self._now + max(0.0, seconds))

    def _advance_to(self, moment: float) -> None:
        self._now = max(self._now, moment)
        for scope in list(self._scopes):
            if not scope.expired and scope.deadline <= self._now:
                scope.expire()


class _ManualTimeout:
    def __init__(self, clock: ManualClock, deadline: float) -> None:
        self._clock = clock
        self.deadline = deadline
        self.expired = False
        self.cancelled = False
        self.task: asyncio.Task[object] | None = None

    def expire(self) -> None:
        """Mark the scope as run out; a task suspended elsewhere is woken by cancelling it.

        The running task itself is never cancelled (the request could outlive the scope): its
        own ``sleep`` raises ``TimeoutError`` instead.
        """
        self.expired = True
        if self.task is not None and self.task is not asyncio.current_task():
            self.cancelled = True
            self.task.cancel()

    async def __aenter__(self) -> None:
        if self.deadline <= self._clock.now():
            raise TimeoutError
        self.task = asyncio.current_task()
        self._clock._scopes.append(self)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._clock._scopes.remove(self)
        if self.cancelled and self.task is not None:
            self.task.uncancel()
            if exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
