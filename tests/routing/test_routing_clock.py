import asyncio

import pytest

from palyra.providers.upstream import coarse_timers
from palyra.routing import ManualClock, SystemClock


async def test_manual_sleep_advances_time_at_once() -> None:
    clock = ManualClock(100.0)
    await clock.sleep(2.5)
    assert clock.now() == 102.5


async def test_a_sleep_inside_a_timeout_stops_at_the_deadline() -> None:
    clock = ManualClock()
    with pytest.raises(TimeoutError):
        async with clock.timeout(3.0):
            await clock.sleep(10.0)
    assert clock.now() == 3.0


async def test_a_sleep_that_fits_the_timeout_finishes_normally() -> None:
    clock = ManualClock()
    async with clock.timeout(3.0):
        await clock.sleep(2.0)
    assert clock.now() == 2.0
    await asyncio.sleep(0)  # no stray cancellation is left behind


async def test_advance_from_outside_fires_a_timeout_of_a_waiting_task() -> None:
    clock = ManualClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait() -> str:
        try:
            async with clock.timeout(5.0):
                await never
        except TimeoutError:
            return f"timed out at {clock.now()}"
        return "finished"

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    clock.advance(4.0)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1.0)
    assert await task == "timed out at 5.0"


async def test_a_zero_timeout_fails_before_the_body_runs() -> None:
    clock = ManualClock()
    ran = False
    with pytest.raises(TimeoutError):
        async with clock.timeout(0):
            ran = True
    assert not ran


async def test_system_clock_times_out_for_real() -> None:
    clock = SystemClock()
    start = clock.now()
    with pytest.raises(TimeoutError):
        async with clock.timeout(0.01):
            await clock.sleep(5)
    assert clock.now() - start < 1


async def test_system_clock_timeouts_fire_no_earlier_and_at_most_a_tick_late() -> None:
    """On coarse timers: never before the deadline, at most one resolution tick after it (plus
    scheduling slack on a busy machine), and nothing stays armed once the scope is left."""
    clock = SystemClock()
    timers = coarse_timers.timers_for()
    start = clock.now()
    with pytest.raises(TimeoutError):
        async with clock.timeout(0.05):
            await asyncio.sleep(5)
    waited = clock.now() - start
    assert 0.05 <= waited < 0.05 + timers.resolution_s + 0.25
    async with clock.timeout(30):
        await asyncio.sleep(0)
    assert len(timers) == 0


async def test_an_outside_cancellation_inside_a_system_clock_timeout_stays_a_cancellation() -> None:
    clock = SystemClock()

    async def inner() -> None:
        async with clock.timeout(30):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(inner())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
