import asyncio

from palyra.config.schema import BreakerConfig
from palyra.model import ErrorEnvelope, FailureClass
from palyra.routing import BreakerKey, CircuitBreakers, InMemoryBreakerStore, ManualClock

CFG = BreakerConfig(consecutive_failures=2, cooldown_ladder_s=[30, 60])
KEY = BreakerKey("target", "openai-main", "default")
DOWN = ErrorEnvelope.of(FailureClass.UPSTREAM_UNAVAILABLE, "503")


async def opened(clock: ManualClock) -> CircuitBreakers:
    breakers = CircuitBreakers(CFG, InMemoryBreakerStore(), clock)
    for _ in range(2):
        await breakers.record(KEY, await breakers.allow(KEY), DOWN)
    return breakers


async def test_concurrent_callers_after_cooldown_get_exactly_one_probe() -> None:
    clock = ManualClock()
    breakers = await opened(clock)
    clock.advance(30)
    admissions = await asyncio.gather(*(breakers.allow(KEY) for _ in range(20)))
    assert sum(a.allowed for a in admissions) == 1
    assert [a.probe for a in admissions if a.allowed] == [True]


async def test_abandoned_probe_lets_the_next_caller_probe() -> None:
    clock = ManualClock()
    breakers = await opened(clock)
    clock.advance(30)
    probe = await breakers.allow(KEY)
    await breakers.abandon(KEY, probe)
    assert (await breakers.allow(KEY)).probe


async def test_reset_forgets_a_disabled_credential() -> None:
    clock = ManualClock()
    breakers = CircuitBreakers(CFG, InMemoryBreakerStore(), clock)
    cred = BreakerKey("credential", "openai-main", "work")
    await breakers.record(
        cred, await breakers.allow(cred), ErrorEnvelope.of(FailureClass.AUTH_INVALID, "401")
    )
    assert not (await breakers.allow(cred)).allowed
    await breakers.reset(cred)
    assert (await breakers.allow(cred)).allowed


async def test_store_holds_serialisable_state_per_key_text() -> None:
    clock = ManualClock()
    store = InMemoryBreakerStore()
    breakers = CircuitBreakers(CFG, store, clock)
    await breakers.record(KEY, await breakers.allow(KEY), DOWN)
    state = await store.get("target:openai-main/default")
    assert state is not None and state.to_dict()["consecutive_failures"] == 1
