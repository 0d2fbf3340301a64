import asyncio

import pytest

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
