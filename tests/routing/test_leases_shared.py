"""Leases on the in-memory manager and on Redis: ``max_concurrency`` across replicas.

On Redis each manager is a replica of its own (its own queue and holds) sharing the counters;
on memory every "replica" is the one manager, which is what a single process is. Waiting is
real (the Redis managers poll), so timeouts here are a fraction of a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from palyra.config.schema import ProviderConfig
from palyra.model import FailureClass, PalyraError
from palyra.routing import LeaseManager
from palyra.routing.clock import SystemClock
from palyra.routing.leases_redis import RedisLeaseManager
from palyra.sharedstate import SharedStateLink
from redis_support import OwnRedis, fresh_namespace, machine_redis_url

PROVIDER = ProviderConfig(id="openai-main", kind="openai", max_concurrency=2)
Replicas = Callable[[], LeaseManager]


async def _drop_namespace(link: SharedStateLink) -> None:
    client = link.client()
    if client is not None:
        keys = [k async for k in client.scan_iter(match=link.key("*"))]
        if keys:
            await client.delete(*keys)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def replicas(request: pytest.FixtureRequest, redis_namespace: str) -> AsyncIterator[Replicas]:
    if request.param == "memory":
        one = LeaseManager(SystemClock())
        yield lambda: one
        return
    made: list[tuple[SharedStateLink, RedisLeaseManager]] = []

    def replica() -> LeaseManager:
        link = SharedStateLink(machine_redis_url(), namespace=redis_namespace)
        manager = RedisLeaseManager(SystemClock(), link)
        made.append((link, manager))
        return manager

    yield replica
    for _, manager in made:
        await manager.aclose()
    if made:
        await _drop_namespace(made[0][0])
    for link, _ in made:
        await link.aclose()


async def test_a_limit_of_two_admits_two_in_total_across_three_replicas(
    replicas: Replicas,
) -> None:
    fleet = [replicas() for _ in range(3)]
    held = [await fleet[i].acquire(PROVIDER, None, background=False, timeout_s=1) for i in (0, 1)]
    with pytest.raises(PalyraError) as caught:
        await fleet[2].acquire(PROVIDER, None, background=False, timeout_s=0.2)
    assert caught.value.failure_class is FailureClass.UPSTREAM_UNAVAILABLE
    assert caught.value.envelope.message == (
        'provider "openai-main" is at its concurrency limit (openai-main (2)); retry later or '
        "raise max_concurrency / max_concurrency_per_credential in [[model_provider.providers]] "
        "of palyra.toml"
    )
    for lease in held:
        lease.release()


async def test_a_slot_freed_on_one_replica_goes_to_a_waiter_on_another(
    replicas: Replicas,
) -> None:
    fleet = [replicas() for _ in range(3)]
    held = [await fleet[i].acquire(PROVIDER, None, background=False, timeout_s=1) for i in (0, 1)]
    waiting = asyncio.create_task(fleet[2].acquire(PROVIDER, None, background=False, timeout_s=5))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    held[0].release()
    lease = await asyncio.wait_for(waiting, 2)
    assert 0.05 < lease.waited_s < 2
    lease.release()
    held[1].release()


async def test_background_never_takes_the_last_free_slot_anywhere(replicas: Replicas) -> None:
    first, second = replicas(), replicas()
    held = await first.acquire(PROVIDER, None, background=False, timeout_s=1)
    with pytest.raises(PalyraError) as caught:
        await second.acquire(PROVIDER, None, background=True, timeout_s=0.2)
    assert "concurrency limit (reserved)" in caught.value.envelope.message
    last = await second.acquire(PROVIDER, None, background=False, timeout_s=1)
    held.release()
    last.release()


async def test_a_foreground_wait_on_one_replica_holds_off_background_on_another(
    replicas: Replicas,
) -> None:
    limit_one = ProviderConfig(id="solo", kind="openai", max_concurrency=1)
    first, second = replicas(), replicas()
    held = await first.acquire(limit_one, None, background=False, timeout_s=1)
    foreground = asyncio.create_task(first.acquire(limit_one, None, background=False, timeout_s=5))
    await asyncio.sleep(0.1)
    background = asyncio.create_task(second.acquire(limit_one, None, background=True, timeout_s=5))
    await asyncio.sleep(0.1)
    held.release()
    granted = await asyncio.wait_for(foreground, 2)
    assert not background.done()
    granted.release()
    (await asyncio.wait_for(background, 2)).release()


async def test_the_credential_limit_is_per_profile_across_replicas(replicas: Replicas) -> None:
    cfg = ProviderConfig(id="p", kind="openai", max_concurrency_per_credential=1)
    first, second = replicas(), replicas()
    a = await first.acquire(cfg, "a", background=False, timeout_s=1)
    b = await second.acquire(cfg, "b", background=False, timeout_s=1)
    with pytest.raises(PalyraError) as caught:
        await second.acquire(cfg, "a", background=False, timeout_s=0.2)
    assert "concurrency limit (p/a (1))" in caught.value.envelope.message
    a.release()
    b.release()


@pytest.mark.redis
async def test_the_slots_of_a_replica_that_died_come_free_after_its_ttl(
    redis_url: str, redis_namespace: str
) -> None:
    links = [SharedStateLink(redis_url, namespace=redis_namespace) for _ in range(2)]
    dying = RedisLeaseManager(SystemClock(), links[0], ttl_s=0.6)
    survivor = RedisLeaseManager(SystemClock(), links[1], ttl_s=0.6)
    for _ in range(2):
        await dying.acquire(PROVIDER, None, background=False, timeout_s=1)
    await asyncio.sleep(0.5)  # the heartbeat (every 0.2 s) keeps the holds alive meanwhile
    assert await survivor.held("openai-main") == 2
    assert dying._heartbeat is not None
    dying._heartbeat.cancel()  # the process "dies": nobody refreshes or releases its holds
    lease = await survivor.acquire(PROVIDER, None, background=False, timeout_s=3)
    assert 0.1 < lease.waited_s < 1.5
    assert await survivor.held("openai-main") == 1
    lease.release()
    await survivor.aclose()
    await _drop_namespace(links[0])
    for link in links:
        await link.aclose()


async def test_leases_are_per_process_while_redis_is_away_and_shared_after(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    namespace = fresh_namespace()
    links = [SharedStateLink(own_redis.url, namespace=namespace, recheck_s=0.05) for _ in (0, 1)]
    first, second = (RedisLeaseManager(SystemClock(), link) for link in links)
    held = await first.acquire(PROVIDER, None, background=False, timeout_s=1)
    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="palyra.sharedstate"):
        # Per process now: the second replica has its own two slots; nothing raises.
        mine = [await second.acquire(PROVIDER, None, background=False, timeout_s=1) for _ in "ab"]
        waiting = asyncio.create_task(second.acquire(PROVIDER, None, background=False, timeout_s=2))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        mine[0].release()
        (await asyncio.wait_for(waiting, 2)).release()
        mine[1].release()
        held.release()  # its hold in Redis is gone with the server
    assert [r.levelno for r in caplog.records].count(logging.WARNING) <= 2  # one per replica
    own_redis.start()
    for _ in range(100):
        if not any(link.degraded for link in links):
            break
        await asyncio.sleep(0.02)
    assert not any(link.degraded for link in links)
    shared = [
        await m.acquire(PROVIDER, None, background=False, timeout_s=1) for m in (first, second)
    ]
    with pytest.raises(PalyraError):
        await first.acquire(PROVIDER, None, background=False, timeout_s=0.2)
    for lease in shared:
        lease.release()
    for manager in (first, second):
        await manager.aclose()
    for link in links:
        await link.aclose()


async def test_a_replica_counts_its_own_queue_for_metrics(replicas: Replicas) -> None:
    first, second = replicas(), replicas()
    held = [await first.acquire(PROVIDER, None, background=False, timeout_s=1) for _ in range(2)]
    waiting = asyncio.create_task(second.acquire(PROVIDER, None, background=False, timeout_s=5))
    await asyncio.sleep(0.1)
    assert second.figures()["openai-main"].waiting == 1
    with pytest.raises(PalyraError):
        await second.acquire(PROVIDER, None, background=False, timeout_s=0.2)
    held[0].release()
    lease = await asyncio.wait_for(waiting, 2)
    figures = second.figures()["openai-main"]
    own_slots = 2 if first is second else 1  # on memory both "replicas" are the one process
    assert (figures.waiting, figures.waits, figures.refusals, figures.active) == (
        0,
        2,
        1,
        own_slots,
    )
    assert figures.wait_s >= 0.3
    lease.release()
    held[1].release()
