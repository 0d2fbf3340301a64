"""Concurrency leases counted in Redis, so ``max_concurrency`` holds across every replica.

Each limited bucket (a provider, a provider's credential) is a sorted set of holders scored by
when their hold runs out, on Redis's own clock. A replica refreshes the holds of its running
calls every ``ttl_s / 3``; a replica that dies stops refreshing, and its slots come free within
``ttl_s``. One Lua script takes a slot in every bucket of a call at once, or none.

Foreground before background holds across replicas: a foreground request that has to wait
registers itself in the bucket's waiting set (held the same way), and a background request
takes no slot while anyone there waits, nor a bucket's last free slot. Within one replica,
waiters are tried in the same order as :class:`LeaseManager`'s queue (foreground first, each in
arrival order); slots freed by other replicas are noticed within ``POLL_S``. The wait is bounded
as before and ends in the same error.

While Redis is unreachable, leases are counted per process (the base :class:`LeaseManager`), and
holds taken on Redis before the outage run out by their TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from palyra.config.schema import ProviderConfig
from palyra.model import PalyraError
from palyra.routing.clock import Clock
from palyra.routing.leases import BucketFigures, Lease, LeaseManager, limit_error
from palyra.sharedstate import SharedStateLink

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

LEASE_TTL_S = 15.0
POLL_S = 0.025

# KEYS: n bucket sets, then their n waiting sets. ARGV: holder, ttl ms, "1" for background, then
# n limits. Answers 0 when every bucket had room (a slot is now held in each), else the 1-based
# index of the first bucket without one: negative when only the background rule kept it out
# (the last free slot, or a foreground request waiting there).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS / 2
local ttl = tonumber(ARGV[2])
local background = ARGV[3] == '1'
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[n + i], '-inf', now)
end
for i = 1, n do
  local limit = tonumber(ARGV[3 + i])
  local reserve = 0
  if background and limit > 1 then reserve = 1 end
  local held = redis.call('ZCARD', KEYS[i])
  if held >= limit then return i end
  if held >= limit - reserve or (background and redis.call('ZCARD', KEYS[n + i]) > 0) then
    return -i
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 0
"""

# KEYS: sets; ARGV: ttl ms, then one member per key. Pushes each member's hold out by ttl
# (members already gone stay gone).
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 1
"""

# KEYS: sets; ARGV: ttl ms, member. Adds the member (a waiting foreground request).
_WAIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 1
"""


@dataclass(eq=False)
class _SharedWaiter:
    seq: int
    holder: str
    provider: ProviderConfig
    profile_id: str | None
    background: bool
    buckets: tuple[tuple[str, int], ...]  # (name, limit)
    granted: asyncio.Future[Lease] = field(default_factory=asyncio.Future)
    refused_at: int = 0  # 1-based bucket index of the last refusal


class SharedLease(Lease):
    """Slots held in Redis; ``release`` frees them in the background (it must not block)."""

    def __init__(
        self,
        manager: RedisLeaseManager,
        holder: str,
        buckets: tuple[tuple[str, int], ...],
        waited_s: float,
    ) -> None:
        super().__init__(manager, (), waited_s)
        self._shared = manager
        self.holder = holder
        self.bucket_names = tuple(name for name, _ in buckets)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._shared._release_shared(self)


class RedisLeaseManager(LeaseManager):
    """:class:`LeaseManager` with its counters in Redis (per process while Redis is away).

    ``in_use`` counts the slots this process holds; :meth:`held` counts every replica's.
    """

    def __init__(self, clock: Clock, link: SharedStateLink, *, ttl_s: float = LEASE_TTL_S) -> None:
        super().__init__(clock)
        self._link = link
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._replica = uuid.uuid4().hex[:12]
        self._holders = itertools.count()
        self._scripts: tuple[Redis, AsyncScript, AsyncScript, AsyncScript] | None = None
        self._held: dict[str, tuple[str, ...]] = {}  # holder -> bucket names, while running
        self._local_held: dict[str, int] = {}
        self._shared_waiters: list[_SharedWaiter] = []
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._removals: list[tuple[str, str]] = []  # (set key, member) to remove next
        self._attempts: list[tuple[_SharedWaiter, asyncio.Future[int]]] = []
        self._attempting = False
        self._removing = False
        self._wake_after = False

    def try_acquire(
        self, provider: ProviderConfig, profile_id: str | None, *, background: bool
    ) -> Lease | None:
        limited = self._limits(provider, profile_id)
        if not limited:
            return super().try_acquire(provider, profile_id, background=background)
        if self._link.client() is None:
            return super().try_acquire(provider, profile_id, background=background)
        return None  # Redis must be asked: ``acquire`` does

    async def acquire(
        self,
        provider: ProviderConfig,
        profile_id: str | None,
        *,
        background: bool,
        timeout_s: float,
    ) -> Lease:
        limited = self._limits(provider, profile_id)
        if not limited or self._link.client() is None:
            return await super().acquire(
                provider, profile_id, background=background, timeout_s=timeout_s
            )
        waiter = _SharedWaiter(
            next(self._seq), self._new_holder(), provider, profile_id, background, limited
        )
        started = self._clock.now()
        if not self._shared_waiters and await self._try(waiter):
            return self._granted(waiter, 0.0)
        if self._link.client() is None:  # Redis went away just now: per process from here
            return await super().acquire(
                provider, profile_id, background=background, timeout_s=timeout_s
            )
        self._shared_waiters.append(waiter)
        queued = self._queue_buckets(limited)  # this process's queue figures, for metrics
        for bucket in queued:
            bucket.waiting += 1
            bucket.waits += 1
        try:
            if not background:
                await self._register_waiting(waiter)
            self._ensure_pump()
            try:
                async with self._clock.timeout(timeout_s):
                    lease = await asyncio.shield(waiter.granted)
            except TimeoutError:
                self._stop_waiting(waiter)
                if not waiter.granted.done():
                    for bucket in queued:
                        bucket.refusals += 1
                    raise self._full_error(provider, waiter) from None
                lease = waiter.granted.result()
            except BaseException:
                self._stop_waiting(waiter)
                if waiter.granted.done():
                    waiter.granted.result().release()
                raise
        finally:
            waited = self._clock.now() - started
            for bucket in queued:
                bucket.waiting -= 1
                bucket.wait_s += waited
        self._stop_waiting(waiter)
        lease.waited_s = waited
        return lease

    def figures(self) -> dict[str, BucketFigures]:
        """As the per-process manager's, with the slots this process holds in Redis counted."""
        found = super().figures()
        for name, held in self._local_held.items():
            if name in found:
                found[name] = replace(found[name], active=found[name].active + held)
        return found

    def in_use(self, provider_id: str, profile_id: str | None = None) -> int:
        name = provider_id if profile_id is None else f"{provider_id}/{profile_id}"
        return super().in_use(provider_id, profile_id) + self._local_held.get(name, 0)

    async def held(self, provider_id: str, profile_id: str | None = None) -> int:
        """Slots held now by every replica (live holds only) for a provider or credential."""
        client = self._link.client()
        if client is None:
            return self.in_use(provider_id, profile_id)
        name = provider_id if profile_id is None else f"{provider_id}/{profile_id}"
        seconds, micros = await client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return int(await client.zcount(self._bucket_key(name), now_ms, "+inf"))

    async def aclose(self) -> None:
        """Stop the background tasks; holds still running are given back."""
        for task in (self._pump, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._pump = self._heartbeat = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- internals

    @staticmethod
    def _limits(provider: ProviderConfig, profile_id: str | None) -> tuple[tuple[str, int], ...]:
        wanted: list[tuple[str, int]] = []
        if provider.max_concurrency is not None:
            wanted.append((provider.id, provider.max_concurrency))
        if profile_id is not None and provider.max_concurrency_per_credential is not None:
            wanted.append((f"{provider.id}/{profile_id}", provider.max_concurrency_per_credential))
        return tuple(wanted)

    def _new_holder(self) -> str:
        # With the pid of now: a manager built before a fork must not share holder names.
        return f"{self._replica}.{os.getpid()}:{next(self._holders)}"

    def _bucket_key(self, name: str) -> str:
        return self._link.key("lease", name)

    def _waiting_key(self, name: str) -> str:
        return self._link.key("lease-waiting", name)

    def _scripts_for(self, client: Redis) -> tuple[AsyncScript, AsyncScript, AsyncScript]:
        if self._scripts is None or self._scripts[0] is not client:
            self._scripts = (
                client,
                client.register_script(_ACQUIRE),
                client.register_script(_REFRESH),
                client.register_script(_WAIT),
            )
        return self._scripts[1], self._scripts[2], self._scripts[3]

    async def _try(self, waiter: _SharedWaiter) -> bool:
        """One atomic attempt at every bucket of ``waiter``; True when all are now held.

        Attempts made meanwhile by other callers of this process go to Redis in one pipeline
        (in arrival order), so a busy replica pays a round trip per batch, not per request.
        """
        if self._link.client() is None:
            return False
        names = tuple(name for name, _ in waiter.buckets)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._attempts.append((waiter, done))
        if not self._attempting:
            self._attempting = True
            self._spawn(self._send_attempts())
        try:
            refused = await asyncio.shield(done)
        except asyncio.CancelledError:
            done.add_done_callback(lambda f: self._give_back_unclaimed(f, waiter.holder, names))
            raise
        except self._link.errors:
            return False  # the sender degraded the link
        if refused:
            waiter.refused_at = refused
            return False
        self._held[waiter.holder] = names
        for name in names:
            self._local_held[name] = self._local_held.get(name, 0) + 1
        self._ensure_heartbeat()
        return True

    def _give_back_unclaimed(
        self, done: asyncio.Future[int], holder: str, names: tuple[str, ...]
    ) -> None:
        """A slot granted to a caller that was cancelled meanwhile: free it at once."""
        if not done.cancelled() and done.exception() is None and done.result() == 0:
            self._spawn(self._zrem(tuple(self._bucket_key(n) for n in names), holder, wake=True))

    async def _send_attempts(self) -> None:
        try:
            while self._attempts:
                batch, self._attempts = self._attempts, []
                client = self._link.client()
                if client is None:
                    for _, done in batch:
                        done.set_result(-1)  # not granted: the caller goes per process
                    continue
                acquire, _, _ = self._scripts_for(client)
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for waiter, _ in batch:
                            names = [name for name, _ in waiter.buckets]
                            keys = [self._bucket_key(n) for n in names]
                            keys += [self._waiting_key(n) for n in names]
                            args: list[str | int] = [waiter.holder, self._ttl_ms]
                            args.append("1" if waiter.background else "0")
                            args += [limit for _, limit in waiter.buckets]
                            await acquire(keys=keys, args=args, client=pipe)
                        answers = await pipe.execute()
                except self._link.errors as exc:
                    self._link.failed(exc)
                    for _, done in batch:
                        done.set_exception(exc)
                    continue
                for (_, done), answer in zip(batch, answers, strict=True):
                    done.set_result(int(answer))
        finally:
            self._attempting = False

    def _granted(self, waiter: _SharedWaiter, waited_s: float) -> SharedLease:
        return SharedLease(self, waiter.holder, waiter.buckets, waited_s)

    async def _register_waiting(self, waiter: _SharedWaiter) -> None:
        client = self._link.client()
        if client is None:
            return
        _, _, wait = self._scripts_for(client)
        keys = [self._waiting_key(name) for name, _ in waiter.buckets]
        try:
            await wait(keys=keys, args=[self._ttl_ms, waiter.holder])
        except self._link.errors as exc:
            self._link.failed(exc)

    def _stop_waiting(self, waiter: _SharedWaiter) -> None:
        if waiter in self._shared_waiters:
            self._shared_waiters.remove(waiter)
        if not waiter.background:
            keys = tuple(self._waiting_key(name) for name, _ in waiter.buckets)
            self._spawn(self._zrem(keys, waiter.holder))

    def _release_shared(self, lease: SharedLease) -> None:
        self._unhold(lease.holder, lease.bucket_names)

    def _grant_to(self, waiter: _SharedWaiter, lease: Lease) -> None:
        """Hand ``lease`` to ``waiter``, or give it back if the wait ended meanwhile."""
        if waiter in self._shared_waiters and not waiter.granted.done():
            self._shared_waiters.remove(waiter)
            waiter.granted.set_result(lease)
        else:
            lease.release()

    def _unhold(self, holder: str, names: tuple[str, ...]) -> None:
        if self._held.pop(holder, None) is None:
            return
        for name in names:
            self._local_held[name] -= 1
        keys = tuple(self._bucket_key(name) for name in names)
        self._spawn(self._zrem(keys, holder, wake=True))

    async def _zrem(self, keys: tuple[str, ...], member: str, *, wake: bool = False) -> None:
        """Remove ``member`` from ``keys``; removals queued meanwhile go in the same pipeline
        (under load, one round trip frees many slots)."""
        self._removals.extend((key, member) for key in keys)
        self._wake_after |= wake
        if self._removing:
            return
        self._removing = True
        try:
            while self._removals:
                batch, self._removals = self._removals, []
                wake, self._wake_after = self._wake_after, False
                client = self._link.client()
                if client is not None:
                    try:
                        async with client.pipeline(transaction=False) as pipe:
                            for key, holder in batch:
                                pipe.zrem(key, holder)
                            await pipe.execute()
                    except self._link.errors as exc:
                        self._link.failed(exc)  # the holds run out by their TTL instead
                if wake:
                    self._wake.set()
        finally:
            self._removing = False

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(
                self._grant_loop(), name="palyra-shared-leases"
            )

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._beat(), name="palyra-shared-lease-heartbeat"
            )

    async def _grant_loop(self) -> None:
        """Try the waiters in queue order until none is left; between passes, wait for a
        release here or ``POLL_S`` (for releases elsewhere). While Redis is away the waiters
        are granted per process, as the base manager would."""
        while self._shared_waiters:
            self._wake.clear()
            for waiter in sorted(self._shared_waiters, key=lambda w: (w.background, w.seq)):
                names = {name for name, _ in waiter.buckets}
                if waiter.background and any(
                    not w.background and names & {n for n, _ in w.buckets}
                    for w in self._shared_waiters
                ):
                    continue
                lease: Lease | None = None
                if self._link.client() is not None and await self._try(waiter):
                    lease = self._granted(waiter, 0.0)
                elif self._link.client() is None:
                    lease = LeaseManager.try_acquire(
                        self, waiter.provider, waiter.profile_id, background=waiter.background
                    )
                if lease is not None:
                    self._grant_to(waiter, lease)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _beat(self) -> None:
        """Push out the holds (and foreground waits) of this replica while they run."""
        interval = self._ttl_ms / 3000
        while self._held or self._shared_waiters:
            await asyncio.sleep(interval)
            client = self._link.client()
            if client is None:
                continue
            _, refresh, _ = self._scripts_for(client)
            keys: list[str] = []
            members: list[str] = []
            for holder, names in self._held.items():
                for name in names:
                    keys.append(self._bucket_key(name))
                    members.append(holder)
            for waiter in self._shared_waiters:
                if not waiter.background:
                    for name, _ in waiter.buckets:
                        keys.append(self._waiting_key(name))
                        members.append(waiter.holder)
            if not keys:
                continue
            try:
                await refresh(keys=keys, args=[self._ttl_ms, *members])
            except self._link.errors as exc:
                self._link.failed(exc)

    @staticmethod
    def _full_error(provider: ProviderConfig, waiter: _SharedWaiter) -> PalyraError:
        index = waiter.refused_at - 1  # only a full bucket is named; else "reserved"
        full = [waiter.buckets[index]] if 0 <= index < len(waiter.buckets) else []
        return limit_error(provider, full)
