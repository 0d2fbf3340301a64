"""Concurrency leases per provider and per credential, foreground before background.

A request holds one lease per limited bucket (its provider, its credential) for the length of the
upstream call. Foreground (interactive) requests are served first; a background (cron) request
never takes a bucket's last free slot, so a burst of scheduled jobs cannot lock people out.
Each bucket counts what its queue did (:meth:`LeaseManager.figures`), so a limit that is
reached shows in metrics instead of only as slower answers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from palyra.config.schema import ProviderConfig
from palyra.model import FailureClass, PalyraError
from palyra.routing.clock import Clock


@dataclass(eq=False)
class _Bucket:
    name: str
    limit: int
    active: int = 0
    waiting: int = 0  # requests queued for this bucket now
    waits: int = 0  # requests that had to queue (granted later or not)
    wait_s: float = 0.0  # time they spent queued, in total
    refusals: int = 0  # requests whose wait ran out

    def fits(self, *, background: bool) -> bool:
        # With a limit of 1 "never the last slot" would starve background work forever;
        # there it only yields to waiting foreground requests (checked by the caller).
        reserve = 1 if background and self.limit > 1 else 0
        return self.active < self.limit - reserve


@dataclass(frozen=True, slots=True)
class BucketFigures:
    """One limit's figures for metrics: slots held and the limit, requests queued now, and
    totals since start (requests that queued, seconds they waited, requests refused)."""

    active: int
    limit: int
    waiting: int
    waits: int
    wait_s: float
    refusals: int


@dataclass(eq=False)
class _Waiter:
    seq: int
    background: bool
    buckets: tuple[_Bucket, ...]
    granted: asyncio.Future[None] = field(default_factory=asyncio.Future)


class Lease:
    """Held slots; ``release`` (or leaving the ``async with``) gives them back exactly once."""

    def __init__(self, manager: LeaseManager, buckets: tuple[_Bucket, ...], waited_s: float):
        self._manager = manager
        self._buckets = buckets
        self._released = False
        self.waited_s = waited_s

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._manager._give_back(self._buckets)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class _FreeLease(Lease):
    """The lease of a provider without limits: it holds no slot, so one is shared by all such
    calls (saves building one per call); releasing it runs only the grant pass that any
    release runs."""

    def release(self) -> None:
        if self._manager._waiters:
            self._manager._grant()


class LeaseManager:
    """Grants leases against ``max_concurrency`` / ``max_concurrency_per_credential``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._free = _FreeLease(self, (), 0.0)

    async def acquire(
        self,
        provider: ProviderConfig,
        profile_id: str | None,
        *,
        background: bool,
        timeout_s: float,
    ) -> Lease:
        """Wait at most ``timeout_s`` for a slot; otherwise UPSTREAM_UNAVAILABLE naming the limit."""
        lease = self.try_acquire(provider, profile_id, background=background)
        if lease is not None:
            return lease
        buckets = self._buckets_for(provider, profile_id)
        started = self._clock.now()
        waiter = _Waiter(next(self._seq), background, buckets)
        self._waiters.append(waiter)
        for bucket in buckets:
            bucket.waiting += 1
            bucket.waits += 1
        try:
            self._grant()
            if not waiter.granted.done():
                try:
                    async with self._clock.timeout(timeout_s):
                        await asyncio.shield(waiter.granted)
                except TimeoutError:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                    if not waiter.granted.done():
                        for bucket in buckets:
                            bucket.refusals += 1
                        raise self._limit_error(provider, buckets) from None
                except BaseException:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                    if waiter.granted.done():
                        self._give_back(buckets)
                    raise
        finally:
            waited = self._clock.now() - started
            for bucket in buckets:
                bucket.waiting -= 1
                bucket.wait_s += waited
        return Lease(self, buckets, waited)

    def try_acquire(
        self, provider: ProviderConfig, profile_id: str | None, *, background: bool
    ) -> Lease | None:
        """The lease ``acquire`` would grant at once, or None when it would have to wait.

        Nobody waits and every bucket has room (or there is no limit at all): granted exactly
        as the queue would grant it, without a coroutine or any wait to time.
        """
        if self._waiters:
            return None
        if provider.max_concurrency is None and (
            profile_id is None or provider.max_concurrency_per_credential is None
        ):
            return self._free  # no limit at all (``_buckets_for`` would find none)
        buckets = self._buckets_for(provider, profile_id)
        if not all(b.fits(background=background) for b in buckets):
            return None
        for bucket in buckets:
            bucket.active += 1
        return Lease(self, buckets, 0.0)

    def in_use(self, provider_id: str, profile_id: str | None = None) -> int:
        """Slots held now for a provider (or one of its credentials): for health and tests."""
        name = provider_id if profile_id is None else f"{provider_id}/{profile_id}"
        bucket = self._buckets.get(name)
        return bucket.active if bucket else 0

    def _queue_buckets(self, limits: tuple[tuple[str, int], ...]) -> tuple[_Bucket, ...]:
        """The buckets of ``(name, limit)`` pairs, made when first used (their queue figures)."""
        return tuple(self._buckets.setdefault(name, _Bucket(name, limit)) for name, limit in limits)

    def figures(self) -> dict[str, BucketFigures]:
        """Every limited bucket used so far (``provider`` or ``provider/credential``)."""
        return {
            name: BucketFigures(b.active, b.limit, b.waiting, b.waits, b.wait_s, b.refusals)
            for name, b in self._buckets.items()
        }

    async def held(self, provider_id: str, profile_id: str | None = None) -> int:
        """Slots held now by every process sharing these limits: here, this one's (a shared
        manager counts every replica's); what ``least_busy`` routing groups compare."""
        return self.in_use(provider_id, profile_id)

    def _buckets_for(self, provider: ProviderConfig, profile_id: str | None) -> tuple[_Bucket, ...]:
        if provider.max_concurrency is None and (
            profile_id is None or provider.max_concurrency_per_credential is None
        ):
            return ()
        wanted: list[tuple[str, int | None]] = [(provider.id, provider.max_concurrency)]
        if profile_id is not None:
            wanted.append((f"{provider.id}/{profile_id}", provider.max_concurrency_per_credential))
        buckets = []
        for name, limit in wanted:
            if limit is None:
                continue
            bucket = self._buckets.setdefault(name, _Bucket(name, limit))
            bucket.limit = limit  # a reloaded config may change it; held slots stay counted
            buckets.append(bucket)
        return tuple(buckets)

    def _grant(self) -> None:
        """Hand free slots to waiters: foreground first, each priority in arrival order."""
        if not self._waiters:
            return
        for waiter in sorted(self._waiters, key=lambda w: (w.background, w.seq)):
            if waiter.background and any(
                not w.background and set(w.buckets) & set(waiter.buckets) for w in self._waiters
            ):
                continue
            if all(b.fits(background=waiter.background) for b in waiter.buckets):
                for bucket in waiter.buckets:
                    bucket.active += 1
                self._waiters.remove(waiter)
                waiter.granted.set_result(None)

    def _give_back(self, buckets: tuple[_Bucket, ...]) -> None:
        for bucket in buckets:
            bucket.active -= 1
        self._grant()

    @staticmethod
    def _limit_error(provider: ProviderConfig, buckets: tuple[_Bucket, ...]) -> PalyraError:
        return limit_error(provider, [(b.name, b.limit) for b in buckets if b.active >= b.limit])


def limit_error(provider: ProviderConfig, full: Sequence[tuple[str, int]]) -> PalyraError:
    """The error of a wait for a slot that ran out; ``full`` names the buckets without room
    as (name, limit), none when only the background reserve kept the request out."""
    named = ", ".join(f"{name} ({limit})" for name, limit in full)
    return PalyraError.of(
        FailureClass.UPSTREAM_UNAVAILABLE,
        f'provider "{provider.id}" is at its concurrency limit ({named or "reserved"}); '
        "retry later or raise max_concurrency / max_concurrency_per_credential in "
        "[[model_provider.providers]] of palyra.toml",
        provider=provider.id,
    )
