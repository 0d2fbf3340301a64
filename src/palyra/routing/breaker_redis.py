"""Breaker and cooldown state in Redis, shared by every replica, per target and per credential.

Each key's state is one JSON string (``BreakerState.to_dict``) under ``palyra:breaker:<key>``.
Transitions stay the pure functions of ``breaker_state``; Redis only makes each one atomic: a
Lua compare-and-set writes the new state only if the stored one is still the one it was computed
from, and otherwise hands back the current one to compute again. So when a cooldown ends and
many requests on many replicas ask at once, exactly one write of "half-open, probe started"
wins and every other caller then sees the probe running.

TTLs never change a decision: a key expires only once its state decides exactly as a fresh one
would (``fresh_after``), plus a second of margin for clocks that differ between replicas. The
last state seen of each key is kept, so the usual transition (a success folded in) is one round
trip; a stale copy costs one more. Callers in one process that change the same key meanwhile
share the next round trip: their transitions are applied in arrival order and written as one
compare-and-set (so a busy key costs a round trip per batch, not per request). While Redis is unreachable each process goes on from the
states it last saw, per process (``SharedStateLink``'s degrade rule), and back to Redis after.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson

from palyra.config.schema import BreakerConfig
from palyra.routing.breaker_state import BreakerState, fresh_after
from palyra.routing.clock import Clock
from palyra.sharedstate import SharedStateLink

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

_T = TypeVar("_T")
TTL_MARGIN_MS = 1000
_NOTHING = b""  # how a missing key (a fresh state) travels through the script

# KEYS[1] the state; ARGV: the state read, the state to write ("" deletes; the one read writes
# nothing), its TTL in ms (0: none). Answers {1} when done, {0, current} when the state moved
# meanwhile (the caller computes again from ``current``).
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return {0, current}
end
if ARGV[2] ~= ARGV[1] then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  elseif ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
end
return {1}
"""


def encode(state: BreakerState) -> bytes:
    return orjson.dumps(state.to_dict())


def decode(raw: bytes) -> BreakerState:
    """The state stored as ``raw``; a value that is not one (written by something else) counts
    as a fresh state, which the next transition then writes over."""
    if not raw:
        return BreakerState()
    try:
        return BreakerState.from_dict(orjson.loads(raw))
    except (ValueError, KeyError, TypeError, IndexError):
        return BreakerState()


class RedisBreakerStore:
    """An :class:`~palyra.routing.breaker.AtomicBreakerStore` on Redis, degrading to per process.

    ``clock`` must be the clock the breakers use, and the same moment in every replica (the
    daemon gives both a ``WallClock``); tests give both one ``ManualClock``.
    """

    def __init__(self, link: SharedStateLink, config: BreakerConfig, clock: Clock) -> None:
        self._link = link
        self._config = config
        self._clock = clock
        self._script: AsyncScript | None = None
        self._script_client: Redis | None = None
        # Per key text: the stored bytes last seen and their decoded state.
        self._seen: dict[str, tuple[bytes, BreakerState]] = {}
        # Used only while Redis is unreachable; dropped when it answers again.
        self._local: dict[str, BreakerState] = {}
        link.on_return(self._local.clear)
        # Changes waiting for the next write of their key, and the task writing them: callers in
        # one process share a round trip (one compare-and-set applies a whole batch in order)
        # instead of queueing for one each or racing each other's compare-and-set.
        self._queues: dict[
            str,
            list[tuple[Callable[[BreakerState], tuple[Any, BreakerState]], asyncio.Future[Any]]],
        ] = {}
        self._flushing: dict[str, asyncio.Task[None]] = {}

    async def update(
        self, key: str, change: Callable[[BreakerState], tuple[_T, BreakerState]]
    ) -> _T:
        if self._link.client() is None:
            return self._update_local(key, change)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = []
        queue.append((change, done))
        if key not in self._flushing:
            # A task of its own: a caller that is cancelled must not strand the others' changes.
            self._flushing[key] = asyncio.get_running_loop().create_task(self._flush(key))
        result: _T = await asyncio.shield(done)
        return result

    def _update_local(
        self, key: str, change: Callable[[BreakerState], tuple[_T, BreakerState]]
    ) -> _T:
        result, updated = change(self._local_state(key))
        self._local[key] = updated
        return result

    async def _flush(self, key: str) -> None:
        """Write the queued changes of ``key``, one batch per round trip, until none is left."""
        queue = self._queues[key]
        try:
            while queue:
                batch = queue[:]
                queue.clear()
                client = self._link.client()
                try:
                    if client is None:
                        raise ConnectionError("shared state is degraded")
                    results = await self._commit(client, key, [c for c, _ in batch])
                except self._link.errors as exc:
                    if client is not None:
                        self._link.failed(exc)
                    results = [self._update_local(key, change) for change, _ in batch]
                except BaseException as exc:  # a bug in a change: its callers hear of it
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    raise
                for (_, done), result in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(result)
        finally:
            del self._flushing[key]

    async def get(self, key: str) -> BreakerState | None:
        client = self._link.client()
        if client is not None:
            try:
                # bytes: the client is made without ``decode_responses``.
                raw = cast("bytes | None", await client.get(self._link.key("breaker", key)))
            except self._link.errors as exc:
                self._link.failed(exc)
            else:
                return self._remember(key, raw) if raw else None
        return self._local_state(key)

    async def put(self, key: str, state: BreakerState) -> None:
        await self.update(key, lambda _: (None, state))

    async def delete(self, key: str) -> None:
        client = self._link.client()
        if client is not None:
            try:
                await client.delete(self._link.key("breaker", key))
            except self._link.errors as exc:
                self._link.failed(exc)
            else:
                self._seen.pop(key, None)
                return
        self._local[key] = BreakerState()

    def ttl_ms(self, state: BreakerState, now: float) -> int | None:
        """How long Redis should keep ``state`` written at ``now``: 0 for ever, None for not at
        all (it is already as good as fresh)."""
        until = fresh_after(state, self._config)
        if until is None:
            return 0
        if until <= now:
            return None
        return math.ceil((until - now) * 1000) + TTL_MARGIN_MS

    async def _commit(
        self,
        client: Redis,
        key: str,
        changes: list[Callable[[BreakerState], tuple[Any, BreakerState]]],
    ) -> list[Any]:
        """Apply ``changes`` in order, as one compare-and-set; from the current state again
        (and again) while another replica writes in between. Their answers, in order."""
        script = self._cas(client)
        redis_key = self._link.key("breaker", key)
        raw, state = self._seen.get(key, (_NOTHING, BreakerState()))
        while True:
            results = []
            updated = state
            for change in changes:
                result, updated = change(updated)
                results.append(result)
            if updated == state:
                new_raw, ttl = raw, None  # nothing to write: the script checks it is current
            else:
                ttl = self.ttl_ms(updated, self._clock.now())
                new_raw = _NOTHING if ttl is None else encode(updated)
            answer = await script(keys=[redis_key], args=[raw, new_raw, ttl or 0])
            if answer[0] == 1:
                self._seen[key] = (new_raw, updated)
                return results
            raw = answer[1] or _NOTHING
            state = self._remember(key, raw)

    def _remember(self, key: str, raw: bytes) -> BreakerState:
        seen = self._seen.get(key)
        if seen is not None and seen[0] == raw:
            return seen[1]
        state = decode(raw)
        self._seen[key] = (raw, state)
        return state

    def _local_state(self, key: str) -> BreakerState:
        """The per-process state during an outage: from the last state Redis showed."""
        state = self._local.get(key)
        if state is None:
            seen = self._seen.get(key)
            state = seen[1] if seen is not None else BreakerState()
        return state

    def _cas(self, client: Redis) -> AsyncScript:
        if self._script is None or self._script_client is not client:
            self._script = client.register_script(_COMPARE_AND_SET)
            self._script_client = client
        return self._script
