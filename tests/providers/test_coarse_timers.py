"""Coarse timers: deadlines rounded up to a tick, one loop timer, and ``asyncio.timeout`` semantics."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

from palyra.providers.upstream import coarse_timers
from palyra.providers.upstream.coarse_timers import CoarseTimers, timers_for

# The loop's own timers may fire a hair early (asyncio's clock resolution, libuv's milliseconds)
# and a busy test machine may run a callback late; the bounds below allow for both.
EARLY_S = 0.002
LATE_S = 0.25


async def _fired_at(timers: CoarseTimers, delays: list[float]) -> list[tuple[float, float]]:
    """(deadline, loop time it fired) for each delay, after all of them fired."""
    loop = asyncio.get_running_loop()
    fired: list[tuple[float, float]] = []
    done = loop.create_future()

    def record(deadline: float) -> None:
        fired.append((deadline, loop.time()))
        if len(fired) == len(delays) and not done.done():
            done.set_result(None)

    for delay in delays:
        deadline = loop.time() + delay
        timers.arm_at(deadline, deadline, record)
    await asyncio.wait_for(done, 10)
    return fired


async def test_an_entry_fires_no_sooner_than_its_deadline_and_at_most_a_tick_later() -> None:
    timers = CoarseTimers(asyncio.get_running_loop(), resolution_s=0.05)
    for deadline, at in await _fired_at(timers, [0.01, 0.06, 0.12]):
        assert deadline - EARLY_S <= at <= deadline + 0.05 + LATE_S


async def test_a_cancelled_entry_never_fires_and_cancel_is_idempotent() -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop, resolution_s=0.01)
    calls: list[str] = []
    token = timers.arm(0.02, "gone", calls.append)
    kept = timers.arm(0.02, "kept", calls.append)
    CoarseTimers.cancel(token, "gone")
    CoarseTimers.cancel(token, "gone")
    assert len(timers) == 1
    await asyncio.sleep(0.1)
    assert calls == ["kept"]
    CoarseTimers.cancel(kept, "kept")  # after it fired: nothing happens
    assert len(timers) == 0 and timers.loop_timers == 0


async def test_many_entries_share_one_loop_timer_and_fire_in_tick_order() -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop, resolution_s=0.02)
    rng = random.Random(7)
    fired: list[float] = []
    tokens = []
    for n in range(5000):
        when = loop.time() + rng.uniform(0.0, 0.2)
        tokens.append((timers.arm_at(when, (n, when), lambda key: fired.append(key[1])), n, when))
        assert timers.loop_timers == 1
    cancelled = {n for _, n, _ in tokens[::2]}
    for token, n, when in tokens[::2]:
        CoarseTimers.cancel(token, (n, when))
    assert len(timers) == 5000 - len(cancelled)
    await asyncio.sleep(0.35)
    assert len(fired) == 5000 - len(cancelled)
    ticks = [timers.tick_of(when) for when in fired]
    assert ticks == sorted(ticks)
    assert len(timers) == 0 and timers.loop_timers == 0


async def test_a_sooner_bucket_rearms_the_loop_timer() -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop, resolution_s=0.01)
    calls: list[str] = []
    timers.arm(30.0, "late", calls.append)
    start = loop.time()
    soon = loop.create_future()
    timers.arm(0.03, soon, lambda f: f.set_result(loop.time()))
    assert await asyncio.wait_for(soon, 5) - start < 0.03 + 0.01 + LATE_S
    assert calls == [] and len(timers) == 1 and timers.loop_timers == 1


async def test_cancelled_entries_do_not_make_the_timers_grow() -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop, resolution_s=0.01)
    live = timers.arm(1000.0, "live", lambda _: None)
    for n in range(20000):  # each in a bucket of its own, cancelled at once
        token = timers.arm_at(loop.time() + 10 + n * 0.01, n, lambda _: None)
        CoarseTimers.cancel(token, n)
        assert timers.buckets <= 2 * 1 + 64 + 1
        assert timers.queued_ticks == timers.buckets
    assert len(timers) == 1
    CoarseTimers.cancel(live, "live")


async def test_a_failing_callback_is_reported_and_the_others_still_run() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        timers = CoarseTimers(loop, resolution_s=0.01)
        calls: list[str] = []

        def boom(_: object) -> None:
            raise ValueError("boom")

        timers.arm(0.01, "boom", boom)
        timers.arm(0.01, "after", calls.append)
        await asyncio.sleep(0.1)
    finally:
        loop.set_exception_handler(None)
    assert calls == ["after"]
    assert [type(c["exception"]) for c in reported] == [ValueError]


async def test_an_entry_that_rearms_itself_waits_for_the_next_loop_turn() -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop, resolution_s=0.01)
    turn = 0
    runs: list[int] = []  # the loop turn each run happened in

    async def count_turns() -> None:
        nonlocal turn
        while True:
            await asyncio.sleep(0)
            turn += 1

    def again(key: str) -> None:
        runs.append(turn)
        if len(runs) < 5:
            # Already past due: it must wait for a later loop turn, not run in this firing.
            timers.arm_at(loop.time() - 1, key, again)

    counter = asyncio.create_task(count_turns())
    timers.arm_at(loop.time() - 1, "self", again)
    await asyncio.sleep(0.1)
    counter.cancel()
    assert len(runs) == 5 and len(set(runs)) == 5


async def test_callbacks_may_cancel_siblings_and_arm_new_entries() -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop, resolution_s=0.01)
    calls: list[str] = []
    tokens: dict[str, Any] = {}

    def first(key: str) -> None:
        calls.append(key)
        CoarseTimers.cancel(tokens["second"], "second")
        timers.arm(0.0, "again", calls.append)  # already due: runs on a later loop turn

    tokens["first"] = timers.arm(0.01, "first", first)
    tokens["second"] = timers.arm(0.01, "second", calls.append)
    await asyncio.sleep(0.1)
    assert calls == ["first", "again"]
    assert len(timers) == 0


async def test_an_infinite_deadline_is_never_due_and_can_be_cancelled() -> None:
    timers = CoarseTimers(asyncio.get_running_loop(), resolution_s=0.01)
    calls: list[str] = []
    never = timers.arm(math.inf, "inf", calls.append)
    timers.arm_at(math.nan, "nan", calls.append)
    assert len(timers) == 0 and timers.loop_timers == 0
    CoarseTimers.cancel(never, "inf")
    await asyncio.sleep(0.03)
    assert calls == []


def test_resolution_must_be_positive() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="positive"):
            CoarseTimers(loop, resolution_s=0)
    finally:
        loop.close()


def test_each_loop_has_its_own_timers_and_a_closed_loop_leaves_nothing_behind() -> None:
    fired: list[str] = []

    async def arm_and_leave(name: str) -> CoarseTimers:
        timers = timers_for()
        assert timers is timers_for(asyncio.get_running_loop())
        timers.arm(0.01, name, fired.append)
        timers.arm(60.0, f"{name}-never", fired.append)
        await asyncio.sleep(0.1)
        return timers

    first = asyncio.run(arm_and_leave("asyncio"))  # the loop closes with an entry still armed
    second = uvloop.run(arm_and_leave("uvloop"))
    third = asyncio.run(arm_and_leave("again"))
    assert fired == ["asyncio", "uvloop", "again"]
    assert first is not second and second is not third and first is not third


def test_a_forked_child_starts_with_fresh_timers() -> None:
    async def get() -> tuple[CoarseTimers, CoarseTimers]:
        before = timers_for()
        coarse_timers._forget_loops()  # what os.register_at_fork runs in the child
        return before, timers_for()

    before, after = asyncio.run(get())
    assert before is not after


# -- timeout: asyncio.timeout's semantics ---------------------------------------------------

# Either module's timeout(): an async context manager with when/expired/reschedule.
TimeoutFactory = Callable[[float | None], Any]
FACTORIES: dict[str, TimeoutFactory] = {
    "asyncio": asyncio.timeout,
    "coarse": coarse_timers.timeout,
}


async def _outcome(
    scenario: Callable[[TimeoutFactory], Awaitable[object]], make: TimeoutFactory
) -> tuple[object, int]:
    """What a scenario ends with: its result or its exception type, and the task's cancelling."""

    async def run() -> tuple[object, int]:
        try:
            result: object = await scenario(make)
        except BaseException as exc:  # the outcome is the point
            result = type(exc).__name__
        task = asyncio.current_task()
        assert task is not None
        return result, task.cancelling()

    return await asyncio.create_task(run())


async def _expires(make: TimeoutFactory) -> object:
    async with make(0.01) as scope:
        await asyncio.sleep(5)
    return scope.expired()


async def _finishes_in_time(make: TimeoutFactory) -> object:
    async with make(5) as scope:
        await asyncio.sleep(0.01)
    return ("done", scope.expired())


async def _no_deadline(make: TimeoutFactory) -> object:
    async with make(None) as scope:
        await asyncio.sleep(0.05)
    return ("done", scope.expired(), scope.when())


async def _infinite_deadline(make: TimeoutFactory) -> object:
    async with make(math.inf) as scope:
        await asyncio.sleep(0.02)
    return ("done", scope.expired(), scope.when())


async def _already_past(make: TimeoutFactory) -> object:
    async with make(-1):
        await asyncio.sleep(5)
    return "not reached"


async def _expired_scope_reports_it(make: TimeoutFactory) -> object:
    scope = make(0.01)
    try:
        async with scope:
            await asyncio.sleep(5)
    except TimeoutError:
        return ("timeout", scope.expired())
    return "not reached"


async def _inner_expires_outer_carries_on(make: TimeoutFactory) -> object:
    async with make(5) as outer:
        try:
            async with make(0.01):
                await asyncio.sleep(5)
        except TimeoutError:
            pass
        await asyncio.sleep(0.01)
    return ("outer done", outer.expired())


async def _outer_expires_through_inner(make: TimeoutFactory) -> object:
    seen: list[str] = []
    try:
        async with make(0.01):
            try:
                async with make(5):
                    await asyncio.sleep(5)
            except asyncio.CancelledError:
                seen.append("inner saw the cancellation")
                raise
    except TimeoutError:
        seen.append("outer timed out")
    return seen


async def _caught_inside_then_finishes(make: TimeoutFactory) -> object:
    async with make(0.01) as scope:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)  # swallowed: the block ends normally, yet it expired
    return ("swallowed", scope.expired())


async def _another_error_after_expiry(make: TimeoutFactory) -> object:
    async with make(0.01):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None
    return "not reached"


async def _reschedule_later_and_sooner(make: TimeoutFactory) -> object:
    loop = asyncio.get_running_loop()
    async with make(0.01) as scope:
        scope.reschedule(loop.time() + 5)
        await asyncio.sleep(0.05)
        scope.reschedule(None)
        await asyncio.sleep(0.02)
        scope.reschedule(loop.time() - 1)
        await asyncio.sleep(5)
    return "not reached"


async def _reschedule_outside(make: TimeoutFactory) -> object:
    scope = make(1)
    errors = []
    try:
        scope.reschedule(None)
    except RuntimeError as exc:
        errors.append(str(exc))
    async with scope:
        pass
    try:
        scope.reschedule(None)
    except RuntimeError as exc:
        errors.append(str(exc))
    try:
        async with scope:
            pass
    except RuntimeError as exc:
        errors.append(str(exc))
    return errors


SCENARIOS = [
    _expires,
    _finishes_in_time,
    _no_deadline,
    _infinite_deadline,
    _already_past,
    _expired_scope_reports_it,
    _inner_expires_outer_carries_on,
    _outer_expires_through_inner,
    _caught_inside_then_finishes,
    _another_error_after_expiry,
    _reschedule_later_and_sooner,
    _reschedule_outside,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.strip("_"))
async def test_timeout_behaves_like_asyncio_timeout(
    scenario: Callable[[TimeoutFactory], Awaitable[object]],
) -> None:
    expected = await _outcome(scenario, FACTORIES["asyncio"])
    assert await _outcome(scenario, FACTORIES["coarse"]) == expected


@pytest.mark.parametrize("name", FACTORIES)
async def test_an_outside_cancellation_is_never_turned_into_a_timeout(name: str) -> None:
    make = FACTORIES[name]
    entered = asyncio.Event()

    async def guarded() -> None:
        async with make(0.05):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("name", FACTORIES)
async def test_an_outside_cancellation_as_the_deadline_passes_stays_a_cancellation(
    name: str,
) -> None:
    make = FACTORIES[name]

    async def guarded() -> None:
        async with make(0.01):
            try:
                await asyncio.sleep(5)
            finally:
                # Cancelled by the deadline; another cancellation arrives before the block ends.
                asyncio.current_task().cancel()  # type: ignore[union-attr]
                await asyncio.sleep(0)

    task = asyncio.create_task(guarded())
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_timeout_at_is_timeout_with_an_absolute_deadline() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with coarse_timers.timeout_at(loop.time() + 0.01) as scope:
            await asyncio.sleep(5)
    assert scope.expired()
    async with coarse_timers.timeout_at(None) as scope:
        await asyncio.sleep(0)
    assert scope.when() is None and not scope.expired()


def test_timeout_runs_on_uvloop_too() -> None:
    async def main() -> tuple[bool, bool]:
        with pytest.raises(TimeoutError):
            async with coarse_timers.timeout(0.01) as expired:
                await asyncio.sleep(5)
        async with coarse_timers.timeout(5) as kept:
            await asyncio.sleep(0.01)
        return expired.expired(), kept.expired()

    assert uvloop.run(main()) == (True, False)


async def test_a_finished_timeout_leaves_no_entry_behind() -> None:
    timers = timers_for()
    before = len(timers)
    for _ in range(100):
        async with coarse_timers.timeout(30):
            await asyncio.sleep(0)
    assert len(timers) == before
