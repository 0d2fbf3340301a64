"""Circuit breakers over a ``BreakerStore``: the I/O shell around ``breaker_state``.

State lives behind a tiny async get/put protocol; the in-memory store serves one process, the
Redis one (:mod:`palyra.routing.breaker_redis`) several replicas. Admission is serialised so that
exactly one probe goes out when a cooldown ends, however many callers arrive at once: by a lock
for a plain get/put store, by the store itself for an :class:`AtomicBreakerStore` (a
compare-and-set in Redis, which no process lock could serialise across replicas). With the
in-memory store nothing awaits between reading and writing a state, so each step already runs
whole; there the states are read and written directly, without the lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from palyra.config.schema import BreakerConfig
from palyra.model import ErrorEnvelope
from palyra.routing.breaker_state import (
    ADMITTED,
    Admission,
    BreakerKey,
    BreakerState,
    admit,
    record,
    release,
)
from palyra.routing.clock import Clock


class BreakerStore(Protocol):
    """Where breaker state lives, one small state per key text."""

    async def get(self, key: str) -> BreakerState | None: ...

    async def put(self, key: str, state: BreakerState) -> None: ...

    async def delete(self, key: str) -> None: ...


_T = TypeVar("_T")


@runtime_checkable
class AtomicBreakerStore(BreakerStore, Protocol):
    """A store that applies one transition atomically, even against other processes."""

    async def update(
        self, key: str, change: Callable[[BreakerState], tuple[_T, BreakerState]]
    ) -> _T:
        """Apply ``change`` (missing state = ``BreakerState()``) to the state of ``key`` as one
        step; ``change`` may run more than once (on a conflict) and must be pure."""
        ...


class InMemoryBreakerStore:
    """Breaker state for one process."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}

    async def get(self, key: str) -> BreakerState | None:
        return self._states.get(key)

    async def put(self, key: str, state: BreakerState) -> None:
        self._states[key] = state

    async def delete(self, key: str) -> None:
        self._states.pop(key, None)


_CLOSED = BreakerState()


class CircuitBreakers:
    """All breakers of one router: ask ``allow`` before a call, ``record`` after it."""

    def __init__(self, config: BreakerConfig, store: BreakerStore, clock: Clock) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._lock = asyncio.Lock()
        # The plain in-memory store (not a subclass, which might await): its dict, used directly.
        self._local: dict[str, BreakerState] | None = (
            store._states if type(store) is InMemoryBreakerStore else None
        )
        self._atomic = store if isinstance(store, AtomicBreakerStore) else None

    async def state(self, key: BreakerKey) -> BreakerState:
        return await self._store.get(key.text) or BreakerState()

    def allow_now(self, key: BreakerKey, now: float) -> Admission | None:
        """``allow`` at ``now`` without a coroutine, when the plain in-memory store holds the
        state; None when the store must be awaited (then call ``allow``). Saves the router a
        coroutine per attempt."""
        local = self._local
        if local is None:
            return None
        current = local.get(key.text, _CLOSED)
        if current.phase == "closed" and now >= current.disabled_until:
            return ADMITTED  # what ``admit`` answers a closed breaker, without the call
        admission, updated = admit(current, now, self._config)
        if updated is not current:
            local[key.text] = updated
        return admission

    async def allow(self, key: BreakerKey) -> Admission:
        """Whether a request may go to ``key`` now; while open the answer is always no."""
        admission = self.allow_now(key, self._clock.now())
        if admission is not None:
            return admission
        clock, cfg = self._clock, self._config
        if self._atomic is not None:
            return await self._atomic.update(key.text, lambda s: admit(s, clock.now(), cfg))
        async with self._lock:
            current = await self.state(key)
            admission, updated = admit(current, self._clock.now(), self._config)
            if updated != current:
                await self._store.put(key.text, updated)
            return admission

    def record_now(
        self,
        key: BreakerKey,
        admission: Admission,
        envelope: ErrorEnvelope | None,
        now: float,
        *,
        credentialed: bool = False,
    ) -> BreakerState | None:
        """``record`` at ``now`` without a coroutine, when the plain in-memory store holds the
        state; None when the store must be awaited (then call ``record``)."""
        local = self._local
        if local is None:
            return None
        current = local.get(key.text, _CLOSED)
        updated = record(
            current,
            key.kind,
            now,
            self._config,
            envelope,
            probe=admission.probe,
            credentialed=credentialed,
        )
        # Identity, not equality: writing an equal state again is harmless, comparing costs more.
        if updated is not current:
            local[key.text] = updated
        return updated

    async def record(
        self,
        key: BreakerKey,
        admission: Admission,
        envelope: ErrorEnvelope | None,
        *,
        credentialed: bool = False,
    ) -> BreakerState:
        """Fold in the outcome of a call ``allow`` admitted (``envelope`` None = success)."""
        state = self.record_now(
            key, admission, envelope, self._clock.now(), credentialed=credentialed
        )
        if state is not None:
            return state
        if self._atomic is not None:
            clock, cfg, probe = self._clock, self._config, admission.probe

            def change(current: BreakerState) -> tuple[BreakerState, BreakerState]:
                updated = record(
                    current,
                    key.kind,
                    clock.now(),
                    cfg,
                    envelope,
                    probe=probe,
                    credentialed=credentialed,
                )
                return updated, updated

            return await self._atomic.update(key.text, change)
        async with self._lock:
            current = await self.state(key)
            updated = record(
                current,
                key.kind,
                self._clock.now(),
                self._config,
                envelope,
                probe=admission.probe,
                credentialed=credentialed,
            )
            if updated != current:
                await self._store.put(key.text, updated)
            return updated

    async def abandon(self, key: BreakerKey, admission: Admission) -> None:
        """The admitted call never went out (or was cut off by the caller): free its probe."""
        if not admission.probe:
            return
        if self._atomic is not None:
            await self._atomic.update(key.text, lambda s: (None, release(s, probe=True)))
            return
        async with self._lock:
            current = await self.state(key)
            updated = release(current, probe=True)
            if updated != current:
                await self._store.put(key.text, updated)

    async def reset(self, key: BreakerKey) -> None:
        """Forget everything about ``key``, e.g. when its auth profile was replaced."""
        async with self._lock:
            await self._store.delete(key.text)
