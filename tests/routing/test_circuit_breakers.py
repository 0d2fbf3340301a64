import asyncio

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
from palyra.routing.breaker_state import admit

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


class SuspendingStore(InMemoryBreakerStore):
    """A store that gives up control on every call, as a networked one (Redis) does."""

    async def get(self, key: str) -> BreakerState | None:
        await asyncio.sleep(0)
        return await super().get(key)

    async def put(self, key: str, state: BreakerState) -> None:
        await asyncio.sleep(0)
        await super().put(key, state)


async def test_a_store_that_suspends_still_gives_exactly_one_probe() -> None:
    clock = ManualClock()
    breakers = CircuitBreakers(CFG, SuspendingStore(), clock)
    for _ in range(2):
        await breakers.record(KEY, await breakers.allow(KEY), DOWN)
    assert not (await breakers.allow(KEY)).allowed
    clock.advance(30)
    admissions = await asyncio.gather(*(breakers.allow(KEY) for _ in range(20)))
    assert [a.probe for a in admissions if a.allowed] == [True]


async def test_the_in_memory_store_and_a_suspending_store_end_in_the_same_states() -> None:
    """The plain in-memory store is read and written without the lock; same outcomes."""
    # closed, opened by two failures, a failed probe, a longer cooldown, a good probe, closed
    outcomes = [None, DOWN, None, DOWN, DOWN, None, "wait", DOWN, None, "wait", None, "wait"]
    outcomes += [None, DOWN, None]
    cred = BreakerKey("credential", "openai-main", "work")
    refused = ErrorEnvelope.of(FailureClass.AUTH_INVALID, "401")
    results = []
    for store in (InMemoryBreakerStore(), SuspendingStore()):
        clock = ManualClock()
        breakers = CircuitBreakers(CFG, store, clock)
        seen = []
        for outcome in outcomes:
            if outcome == "wait":
                clock.advance(31)
                continue
            admission = await breakers.allow(KEY)
            seen.append(admission)
            if admission.allowed:
                assert not isinstance(outcome, str)
                seen.append(await breakers.record(KEY, admission, outcome))
            clock.advance(1)
        await breakers.record(cred, await breakers.allow(cred), refused)
        seen.append(await breakers.allow(cred))
        results.append((seen, await store.get(KEY.text), await store.get(cred.text)))
    assert results[0] == results[1]
    assert any(isinstance(s, Admission) and not s.allowed for s in results[0][0])


async def test_allow_now_and_record_now_answer_only_for_the_plain_in_memory_store() -> None:
    """The router's coroutine-free calls: the same answers as ``allow``/``record`` would give
    on the plain store; None for any other store, which must be awaited."""
    outcomes = [None, DOWN, None, DOWN, DOWN, "wait", DOWN, "wait", None, None]
    results = []
    for direct in (True, False):
        clock = ManualClock()
        breakers = CircuitBreakers(CFG, InMemoryBreakerStore(), clock)
        seen: list[object] = []
        for outcome in outcomes:
            if outcome == "wait":
                clock.advance(61)
                continue
            now = clock.now()
            admission = breakers.allow_now(KEY, now) if direct else await breakers.allow(KEY)
            seen.append(admission)
            if admission is not None and admission.allowed:
                assert not isinstance(outcome, str)
                if direct:
                    seen.append(breakers.record_now(KEY, admission, outcome, now))
                else:
                    seen.append(await breakers.record(KEY, admission, outcome))
            clock.advance(1)
        results.append((seen, await breakers.state(KEY)))
    assert results[0] == results[1]
    suspending = CircuitBreakers(CFG, SuspendingStore(), ManualClock())
    assert suspending.allow_now(KEY, 0.0) is None
    assert suspending.record_now(KEY, Admission(True), None, 0.0) is None


phases = st.sampled_from(["closed", "open", "half_open"])
times = st.floats(min_value=0, max_value=5000, allow_nan=False)
states = st.builds(
    BreakerState,
    phase=phases,
    consecutive_failures=st.integers(0, 3),
    open_until=times,
    ladder_index=st.integers(0, 1),
    probe_started_at=st.one_of(st.none(), times),
    disabled_until=st.one_of(st.just(0.0), times),
)


@settings(max_examples=300, deadline=None)
@given(state=states, now=times)
def test_allow_now_answers_and_stores_exactly_what_admit_decides(
    state: BreakerState, now: float
) -> None:
    """``allow_now`` answers closed breakers itself; the answer and the stored state are the
    pure ``admit``'s all the same."""
    store = InMemoryBreakerStore()
    breakers = CircuitBreakers(CFG, store, ManualClock())
    asyncio.run(store.put(KEY.text, state))
    expected, after = admit(state, now, CFG)
    assert breakers.allow_now(KEY, now) == expected
    assert asyncio.run(store.get(KEY.text)) == after
