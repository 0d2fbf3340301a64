import asyncio

import pytest

from palyra.config.schema import ProviderConfig
from palyra.model import FailureClass, PalyraError
from palyra.routing import Lease, LeaseManager, ManualClock
from palyra.routing.leases import BucketFigures

PROVIDER = ProviderConfig(id="openai-main", kind="openai", max_concurrency=2)


async def spin() -> None:
    """Let woken tasks run (no simulated time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_background_never_takes_the_last_free_slot() -> None:
    clock = ManualClock()
    leases = LeaseManager(clock)
    held = await leases.acquire(PROVIDER, None, background=False, timeout_s=1)
    waiting = asyncio.create_task(leases.acquire(PROVIDER, None, background=True, timeout_s=5))
    await spin()
    assert not waiting.done()
    last = await leases.acquire(PROVIDER, None, background=False, timeout_s=1)
    assert leases.in_use("openai-main") == 2
    clock.advance(5)
    with pytest.raises(PalyraError) as caught:
        await waiting
    assert caught.value.failure_class is FailureClass.UPSTREAM_UNAVAILABLE
    assert 'provider "openai-main" is at its concurrency limit' in caught.value.envelope.message
    held.release()
    last.release()
    assert leases.in_use("openai-main") == 0


async def test_a_freed_slot_goes_to_foreground_before_an_earlier_background_waiter() -> None:
    clock = ManualClock()
    leases = LeaseManager(clock)
    cfg = ProviderConfig(id="p", kind="openai", max_concurrency=3)
    held = [await leases.acquire(cfg, None, background=False, timeout_s=1) for _ in range(3)]
    background = asyncio.create_task(leases.acquire(cfg, None, background=True, timeout_s=60))
    await spin()
    foreground = asyncio.create_task(leases.acquire(cfg, None, background=False, timeout_s=60))
    await spin()
    held[0].release()
    await spin()
    assert foreground.done() and not background.done()
    held[1].release()  # now two slots are taken, one free: background may take it (not the last)
    await spin()
    assert not background.done()  # 2 active of 3 -> the free slot is the last one
    held[2].release()
    lease: Lease = await background
    assert lease.waited_s == 0.0  # no simulated time passed while it waited
    assert leases.in_use("p") == 2


async def test_credential_limit_is_per_profile() -> None:
    clock = ManualClock()
    leases = LeaseManager(clock)
    cfg = ProviderConfig(id="p", kind="openai", max_concurrency_per_credential=1)
    a = await leases.acquire(cfg, "a", background=False, timeout_s=1)
    b = await leases.acquire(cfg, "b", background=False, timeout_s=1)
    second_a = asyncio.create_task(leases.acquire(cfg, "a", background=False, timeout_s=2))
    await spin()
    clock.advance(1.5)
    assert not second_a.done()
    a.release()
    lease = await second_a
    assert lease.waited_s == 1.5
    assert leases.in_use("p", "a") == 1 and leases.in_use("p", "b") == 1
    b.release()
    lease.release()


async def test_with_a_limit_of_one_background_runs_when_no_foreground_waits() -> None:
    leases = LeaseManager(ManualClock())
    cfg = ProviderConfig(id="p", kind="openai", max_concurrency=1)
    async with await leases.acquire(cfg, None, background=True, timeout_s=1):
        assert leases.in_use("p") == 1
    assert leases.in_use("p") == 0


async def test_no_limits_means_no_waiting_and_release_is_idempotent() -> None:
    leases = LeaseManager(ManualClock())
    cfg = ProviderConfig(id="p", kind="openai")
    many = [await leases.acquire(cfg, "a", background=True, timeout_s=0.001) for _ in range(50)]
    for lease in many:
        lease.release()
        lease.release()
    assert leases.in_use("p") == 0


async def test_try_acquire_grants_only_what_acquire_would_grant_at_once() -> None:
    clock = ManualClock()
    leases = LeaseManager(clock)
    unlimited = ProviderConfig(id="free", kind="openai")
    free = leases.try_acquire(unlimited, None, background=True)
    assert free is not None and free.waited_s == 0.0
    free.release()
    first = leases.try_acquire(PROVIDER, None, background=False)
    assert first is not None and leases.in_use("openai-main") == 1
    # A background request never takes the last free slot, so it is not granted at once.
    assert leases.try_acquire(PROVIDER, None, background=True) is None
    second = leases.try_acquire(PROVIDER, None, background=False)
    assert second is not None and leases.in_use("openai-main") == 2
    assert leases.try_acquire(PROVIDER, None, background=False) is None
    waiting = asyncio.create_task(leases.acquire(PROVIDER, None, background=False, timeout_s=5))
    await spin()
    # Someone waits: even an unlimited lease is left to the queue, exactly as acquire does.
    assert leases.try_acquire(unlimited, None, background=False) is None
    first.release()
    third = await waiting
    assert leases.in_use("openai-main") == 2
    assert leases.try_acquire(PROVIDER, None, background=False) is None
    second.release()
    third.release()
    assert leases.in_use("openai-main") == 0


async def test_releasing_a_lease_without_limits_still_runs_a_grant_pass() -> None:
    """A lease on an unlimited provider gives nothing back, but its release still hands free
    slots to waiters, as any release does (here: a background request that only waited behind
    a foreground one whose wait ran out)."""
    clock = ManualClock()
    leases = LeaseManager(clock)
    shared = ProviderConfig(
        id="p", kind="openai", max_concurrency=3, max_concurrency_per_credential=1
    )
    unlimited = ProviderConfig(id="free", kind="openai")
    free = await leases.acquire(unlimited, None, background=False, timeout_s=1)
    held = await leases.acquire(shared, "work", background=False, timeout_s=1)
    blocked = asyncio.create_task(leases.acquire(shared, "work", background=False, timeout_s=1))
    await spin()
    behind = asyncio.create_task(leases.acquire(shared, None, background=True, timeout_s=60))
    await spin()
    assert not behind.done()  # it fits, but waits behind the foreground request
    clock.advance(1)
    with pytest.raises(PalyraError):
        await blocked
    await spin()
    assert not behind.done()
    free.release()
    await spin()
    assert behind.done() and leases.in_use("p") == 2
    (await behind).release()
    held.release()
    assert leases.in_use("p") == 0


async def test_a_queue_at_a_reached_limit_is_counted_for_metrics() -> None:
    clock = ManualClock()
    leases = LeaseManager(clock)
    held = [await leases.acquire(PROVIDER, None, background=False, timeout_s=1) for _ in range(2)]
    assert leases.figures()["openai-main"] == BucketFigures(2, 2, 0, 0, 0.0, 0)
    served = asyncio.create_task(leases.acquire(PROVIDER, None, background=False, timeout_s=10))
    refused = asyncio.create_task(leases.acquire(PROVIDER, None, background=False, timeout_s=3))
    await spin()
    assert leases.figures()["openai-main"].waiting == 2
    clock.advance(2)
    held[0].release()
    lease = await served
    clock.advance(1)
    with pytest.raises(PalyraError):
        await refused
    assert lease.waited_s == 2
    assert leases.figures()["openai-main"] == BucketFigures(
        active=2, limit=2, waiting=0, waits=2, wait_s=5.0, refusals=1
    )
