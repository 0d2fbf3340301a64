"""Breakers on the in-memory store and on Redis decide alike; on Redis, replicas share them.

The property test runs one event sequence on the in-memory store and on two "replicas" (each a
``CircuitBreakers`` with a Redis store of its own, so its own cache of states) sharing Redis,
on simulated time, and compares every decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.config.schema import BreakerConfig
from palyra.model import ErrorEnvelope, FailureClass
from palyra.routing import (
    Admission,
    BreakerKey,
    BreakerState,
    CircuitBreakers,
    InMemoryBreakerStore,
    ManualClock,
)
from palyra.routing.breaker_redis import TTL_MARGIN_MS, RedisBreakerStore
from palyra.routing.breaker_state import WINDOW_BUCKETS
from palyra.sharedstate import SharedStateLink
from redis_support import OwnRedis, fresh_namespace, machine_redis_url

CFG = BreakerConfig(
    consecutive_failures=3,
    error_ratio=0.5,
    window_s=10,
    min_requests=4,
    cooldown_ladder_s=[5, 20],
    auth_disable_s=60,
)
TARGET = BreakerKey("target", "openai-main", "default")
CRED = BreakerKey("credential", "openai-main", "work")
DOWN = ErrorEnvelope.of(FailureClass.UPSTREAM_UNAVAILABLE, "503")
REFUSED = ErrorEnvelope.of(FailureClass.AUTH_INVALID, "401")

Backend = Literal["memory", "redis"]


async def _drop_namespace(link: SharedStateLink) -> None:
    client = link.client()
    if client is None:
        return
    keys = [k async for k in client.scan_iter(match=link.key("*"))]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def replicas(
    request: pytest.FixtureRequest, redis_namespace: str
) -> AsyncIterator[Callable[[ManualClock], CircuitBreakers]]:
    """Builds breakers: each call on Redis is another replica sharing the same state; on
    memory every call shares one store (one process)."""
    if request.param == "memory":
        store = InMemoryBreakerStore()
        yield lambda clock: CircuitBreakers(CFG, store, clock)
        return
    links: list[SharedStateLink] = []

    def replica(clock: ManualClock) -> CircuitBreakers:
        link = SharedStateLink(machine_redis_url(), namespace=redis_namespace)
        links.append(link)
        return CircuitBreakers(CFG, RedisBreakerStore(link, CFG, clock), clock)

    yield replica
    if links:
        await _drop_namespace(links[0])
    for link in links:
        await link.aclose()


async def _open(breakers: CircuitBreakers, key: BreakerKey = TARGET) -> None:
    for _ in range(CFG.consecutive_failures):
        await breakers.record(key, await breakers.allow(key), DOWN)


async def test_failures_seen_by_one_replica_keep_the_others_out(
    replicas: Callable[[ManualClock], CircuitBreakers],
) -> None:
    clock = ManualClock()
    first, second = replicas(clock), replicas(clock)
    await _open(first)
    refused = await second.allow(TARGET)
    assert not refused.allowed and refused.retry_in_s == 5
    assert (await second.state(TARGET)).phase == "open"


async def test_one_probe_in_total_when_the_cooldown_ends_on_every_replica(
    replicas: Callable[[ManualClock], CircuitBreakers],
) -> None:
    clock = ManualClock()
    fleet = [replicas(clock) for _ in range(3)]
    await _open(fleet[0])
    for breakers in fleet:  # every replica has seen (and cached) the open state
        assert not (await breakers.allow(TARGET)).allowed
    clock.advance(5)
    admissions = await asyncio.gather(*(b.allow(TARGET) for b in fleet for _ in range(10)))
    assert [a.probe for a in admissions if a.allowed] == [True]


async def test_an_abandoned_probe_lets_another_replica_probe(
    replicas: Callable[[ManualClock], CircuitBreakers],
) -> None:
    clock = ManualClock()
    first, second = replicas(clock), replicas(clock)
    await _open(first)
    clock.advance(5)
    probe = await first.allow(TARGET)
    assert not (await second.allow(TARGET)).allowed
    await first.abandon(TARGET, probe)
    assert (await second.allow(TARGET)).probe


async def test_a_good_probe_on_one_replica_closes_the_breaker_for_all(
    replicas: Callable[[ManualClock], CircuitBreakers],
) -> None:
    clock = ManualClock()
    first, second = replicas(clock), replicas(clock)
    await _open(first)
    clock.advance(5)
    state = await second.record(TARGET, await second.allow(TARGET), None)
    assert state == BreakerState()
    assert (await first.allow(TARGET)) == Admission(True)


async def test_a_credential_disabled_on_one_replica_is_reset_for_all(
    replicas: Callable[[ManualClock], CircuitBreakers],
) -> None:
    clock = ManualClock()
    first, second = replicas(clock), replicas(clock)
    await first.record(CRED, await first.allow(CRED), REFUSED)
    cooling = await second.allow(CRED)
    assert not cooling.allowed and cooling.retry_in_s == 60
    await second.reset(CRED)
    assert (await first.allow(CRED)).allowed


async def test_no_outcome_is_lost_when_many_callers_on_two_replicas_record_at_once(
    replicas: Callable[[ManualClock], CircuitBreakers],
) -> None:
    clock = ManualClock()
    first, second = replicas(clock), replicas(clock)

    async def call(breakers: CircuitBreakers, ok: bool) -> None:
        await breakers.record(TARGET, await breakers.allow(TARGET), None if ok else DOWN)

    # 60 successes and 2 failures, interleaved at random by the event loop: never 3 failures in
    # a row, and a ratio far below 0.5, so the breaker stays closed and counts every outcome.
    calls = [call(first if i % 2 else second, i not in (7, 40)) for i in range(62)]
    await asyncio.gather(*calls)
    state = await first.state(TARGET)
    assert state.phase == "closed"
    assert sum(b[1] for b in state.buckets) == 60
    assert sum(b[2] for b in state.buckets) == 2


# ---- TTLs: a key lives exactly as long as its state says something a fresh one would not.


@pytest.fixture
async def redis_store(redis_url: str, redis_namespace: str) -> AsyncIterator[RedisBreakerStore]:
    link = SharedStateLink(redis_url, namespace=redis_namespace)
    yield RedisBreakerStore(link, CFG, ManualClock(100.0))
    await _drop_namespace(link)
    await link.aclose()


async def _pttl(store: RedisBreakerStore, key: BreakerKey) -> int:
    client = store._link.client()
    assert client is not None
    return int(await client.pttl(store._link.key("breaker", key.text)))


@pytest.mark.redis
async def test_a_closed_breaker_with_only_successes_expires_with_its_window(
    redis_store: RedisBreakerStore,
) -> None:
    breakers = CircuitBreakers(CFG, redis_store, redis_store._clock)
    await breakers.record(TARGET, await breakers.allow(TARGET), None)
    # The success's bucket starts at 100 (width 1 s) and leaves the window at 110.
    assert CFG.window_s / WINDOW_BUCKETS == 1
    ttl = await _pttl(redis_store, TARGET)
    assert 10_000 < ttl <= 10_000 + TTL_MARGIN_MS


@pytest.mark.redis
async def test_counted_failures_and_open_breakers_never_expire(
    redis_store: RedisBreakerStore,
) -> None:
    breakers = CircuitBreakers(CFG, redis_store, redis_store._clock)
    await breakers.record(TARGET, await breakers.allow(TARGET), DOWN)
    assert await _pttl(redis_store, TARGET) == -1  # a consecutive failure is never forgotten
    await _open(breakers)
    assert (await breakers.state(TARGET)).phase == "open"
    assert await _pttl(redis_store, TARGET) == -1  # nor the cooldown ladder step


@pytest.mark.redis
async def test_a_disabled_credential_expires_with_its_disablement(
    redis_store: RedisBreakerStore,
) -> None:
    breakers = CircuitBreakers(CFG, redis_store, redis_store._clock)
    await breakers.record(CRED, await breakers.allow(CRED), REFUSED)
    ttl = await _pttl(redis_store, CRED)
    assert 60_000 < ttl <= 60_000 + TTL_MARGIN_MS


@pytest.mark.redis
async def test_a_state_as_good_as_fresh_is_deleted_not_stored(
    redis_store: RedisBreakerStore,
) -> None:
    breakers = CircuitBreakers(CFG, redis_store, redis_store._clock)
    await _open(breakers)
    redis_store._clock.advance(5)
    await breakers.record(TARGET, await breakers.allow(TARGET), None)  # the probe succeeds
    assert await _pttl(redis_store, TARGET) == -2  # no key: the state is BreakerState()


@pytest.mark.redis
async def test_a_value_that_is_no_state_counts_as_fresh_and_is_written_over(
    redis_store: RedisBreakerStore,
) -> None:
    client = redis_store._link.client()
    assert client is not None
    await client.set(redis_store._link.key("breaker", TARGET.text), b"not json")
    breakers = CircuitBreakers(CFG, redis_store, redis_store._clock)
    assert (await breakers.allow(TARGET)).allowed
    await breakers.record(TARGET, Admission(True), DOWN)
    assert (await breakers.state(TARGET)).consecutive_failures == 1


# ---- Outage: per-process state from the last states seen, one warning, back to Redis after.


async def test_breakers_work_on_during_an_outage_and_share_again_after(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    links = [
        SharedStateLink(own_redis.url, namespace=fresh_namespace(), recheck_s=0.05)
        for _ in range(2)
    ]
    links[1].namespace = links[0].namespace
    first, second = (CircuitBreakers(CFG, RedisBreakerStore(li, CFG, clock), clock) for li in links)
    await _open(first)
    assert not (await second.allow(TARGET)).allowed
    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="palyra.sharedstate"):
        for _ in range(20):  # still open, from the state last seen; nothing raises
            assert not (await first.allow(TARGET)).allowed
        clock.advance(5)
        probe = await first.allow(TARGET)
        assert probe.probe
        assert (await first.record(TARGET, probe, None)).phase == "closed"
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    own_redis.start()  # an empty Redis: it lost every state
    for _ in range(100):
        if not links[0].degraded:
            break
        await asyncio.sleep(0.02)
    assert not links[0].degraded
    await _open(first)
    for _ in range(100):
        if not links[1].degraded:
            break
        await asyncio.sleep(0.02)
    assert not (await second.allow(TARGET)).allowed  # shared again
    for link in links:
        await link.aclose()


# ---- The property: memory and Redis (two replicas) decide alike on every event sequence.

OUTCOMES = [
    None,
    DOWN,
    ErrorEnvelope.of(FailureClass.RATE_LIMITED, "429"),
    REFUSED,
    ErrorEnvelope.of(FailureClass.INVALID_REQUEST, "400"),
]
outcome_indexes = st.sampled_from([0, 1, 1, 1, 2, 3, 4])  # failures weigh more: breakers open
events = st.lists(
    st.one_of(
        st.tuples(
            st.just("call"), st.integers(0, 1), st.integers(0, 1), outcome_indexes, st.booleans()
        ),
        st.tuples(st.just("allow"), st.integers(0, 1), st.integers(0, 1)),
        st.tuples(
            st.just("record"),
            st.integers(0, 1),
            st.integers(0, 1),
            st.integers(0, 7),
            outcome_indexes,
            st.booleans(),
        ),
        st.tuples(st.just("abandon"), st.integers(0, 1), st.integers(0, 1), st.integers(0, 7)),
        st.tuples(st.just("advance"), st.sampled_from([0.25, 0.5, 1.0, 2.5, 4.9, 5.0, 10.0, 61.0])),
        st.tuples(st.just("reset"), st.integers(0, 1), st.integers(0, 1)),
    ),
    max_size=60,
)


def effective(state: BreakerState, now: float) -> BreakerState:
    """What of a state still decides anything at ``now``: expired disablement and buckets out
    of the window decide nothing (a Redis key may be gone, or deleted, once only they are left)."""
    return state._replace(
        disabled_until=state.disabled_until if state.disabled_until > now else 0.0,
        buckets=tuple(b for b in state.buckets if b[0] > now - CFG.window_s),
    )


async def _run(
    fleet: list[CircuitBreakers], clock: ManualClock, script: list[tuple[object, ...]]
) -> list[object]:
    keys = (TARGET, CRED)
    pending: dict[BreakerKey, list[Admission]] = {TARGET: [], CRED: []}
    seen: list[object] = []
    for event in script:
        name = event[0]
        if name == "advance":
            assert isinstance(event[1], float)
            clock.advance(event[1])
            continue
        key = keys[int(event[1])]  # type: ignore[call-overload]
        breakers = fleet[int(event[2]) % len(fleet)]  # type: ignore[call-overload]
        if name == "call":  # a whole request: admitted, then its outcome at once
            admission = await breakers.allow(key)
            seen.append(admission)
            if admission.allowed:
                outcome = OUTCOMES[int(event[3])]  # type: ignore[call-overload]
                credentialed = key is TARGET and bool(event[4])
                state = await breakers.record(key, admission, outcome, credentialed=credentialed)
                seen.append(effective(state, clock.now()))
        elif name == "allow":
            admission = await breakers.allow(key)
            seen.append(admission)
            if admission.allowed:
                pending[key].append(admission)
        elif name == "reset":
            await breakers.reset(key)
        elif pending[key]:
            admission = pending[key].pop(int(event[3]) % len(pending[key]))  # type: ignore[call-overload]
            if name == "abandon":
                await breakers.abandon(key, admission)
            else:
                outcome = OUTCOMES[int(event[4])]  # type: ignore[call-overload]
                credentialed = key is TARGET and bool(event[5])
                state = await breakers.record(key, admission, outcome, credentialed=credentialed)
                seen.append(effective(state, clock.now()))
        seen.append(clock.now())
    for key in keys:
        seen.append(effective(await fleet[0].state(key), clock.now()))
    return seen


@pytest.mark.redis
@settings(max_examples=150, deadline=None)
@given(script=events)
def test_memory_and_redis_replicas_make_every_decision_alike(
    script: list[tuple[object, ...]],
) -> None:
    url = machine_redis_url()

    async def both() -> tuple[list[object], list[object]]:
        clock = ManualClock(1000.0)
        memory = await _run([CircuitBreakers(CFG, InMemoryBreakerStore(), clock)], clock, script)
        namespace = fresh_namespace()
        links = [SharedStateLink(url, namespace=namespace) for _ in range(2)]
        clock = ManualClock(1000.0)
        fleet = [CircuitBreakers(CFG, RedisBreakerStore(li, CFG, clock), clock) for li in links]
        try:
            shared = await _run(fleet, clock, script)
        finally:
            await _drop_namespace(links[0])
            for link in links:
                await link.aclose()
        assert not any(link.degraded for link in links)
        return memory, shared

    memory, shared = asyncio.run(both())
    assert memory == shared
