"""Sliding windows and budget periods: the pure arithmetic, the per-process store, and the
Redis store running the same sequences to the same answers."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palyra.sharedstate import SharedStateLink
from palyra.usage.redis_windows import RedisWindows
from palyra.usage.windows import MemoryWindows, Taken, Windows, wait_below

T0 = 1_800_000_000.0  # a fixed wall-clock second, so runs are reproducible


def test_a_burst_counts_in_full_until_it_is_a_window_old() -> None:
    windows = MemoryWindows()
    for i in range(3):
        assert windows.take_now("k", 3, 1, T0 + i * 0.1, 60).admitted
    refused = windows.take_now("k", 3, 1, T0 + 59.5, 60)
    assert refused == Taken(False, 3, pytest.approx(0.5))
    assert windows.take_now("k", 3, 1, T0 + 60.0, 60).admitted


def test_retry_after_is_when_enough_old_seconds_leave_the_window() -> None:
    counts = [(int(T0), 2), (int(T0) + 10, 1), (int(T0) + 20, 1)]
    assert wait_below(counts, T0 + 30, 60, 4) == pytest.approx(30)  # the first second leaves
    assert wait_below(counts, T0 + 30, 60, 2) == pytest.approx(40)  # then the second one
    assert wait_below(counts, T0 + 30, 60, 5) == 0.0
    assert wait_below(counts, T0 + 65, 60, 3) == 0.0  # the first count is gone already
    assert wait_below(counts, T0 + 65, 60, 2) == pytest.approx(5)


def test_tokens_added_after_the_answer_fill_the_window() -> None:
    windows = MemoryWindows()
    assert windows.take_now("t", 100, 0, T0, 60).admitted
    windows.add_now("t", 120, T0 + 1, 60)
    refused = windows.take_now("t", 100, 0, T0 + 2, 60)
    assert (refused.admitted, refused.total) == (False, 120)
    assert refused.retry_after_s == pytest.approx(59)


async def test_periods_start_from_their_seed_and_add_up() -> None:
    windows = MemoryWindows()
    assert await windows.period_total("p") is None
    assert await windows.period_seed("p", 40, T0 + 100) == 40
    assert await windows.period_seed("p", 999, T0 + 100) == 40, "a known period keeps its total"
    assert await windows.period_add("p", 5, T0 + 100) == 45
    assert await windows.period_total("p") == 45


Op = tuple[str, int, float]  # (take | add, amount or limit, seconds after T0)
ops = st.lists(
    st.tuples(
        st.sampled_from(["take", "add"]),
        st.integers(1, 5),
        st.floats(0, 3, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


async def _play(windows: Windows, key: str, sequence: list[Op]) -> list[object]:
    now = T0
    seen: list[object] = []
    for kind, amount, step in sequence:
        now += step
        if kind == "take":
            taken = await windows.take(key, amount + 2, 1, now, 10)
            seen.append((taken.admitted, taken.total, round(taken.retry_after_s, 3)))
        else:
            await windows.add(key, amount, now, 10)
    return seen


@pytest.mark.redis
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=ops)
def test_redis_windows_answer_as_the_per_process_ones(
    redis_url: str, redis_namespace: str, sequence: list[Op]
) -> None:
    async def both() -> tuple[list[object], list[object]]:
        link = SharedStateLink(redis_url, namespace=redis_namespace)
        try:
            shared = RedisWindows(link)
            key = f"prop-{id(sequence)}-{len(sequence)}"
            client = link.client()
            assert client is not None
            await client.delete(link.key("win", key))
            in_redis = await _play(shared, key, sequence)
            assert not link.degraded, "the Redis run must not have fallen back"
            return in_redis, await _play(MemoryWindows(), key, sequence)
        finally:
            await link.aclose()

    in_redis, in_memory = asyncio.run(both())
    assert in_redis == in_memory


@pytest.mark.redis
async def test_redis_periods_seed_once_and_add_across_links(
    redis_url: str, redis_namespace: str
) -> None:
    first = SharedStateLink(redis_url, namespace=redis_namespace)
    second = SharedStateLink(redis_url, namespace=redis_namespace)
    try:
        a, b = RedisWindows(first), RedisWindows(second)
        assert await a.period_total("budget") is None
        assert await a.period_seed("budget", 10, T0 + 3600) == 10
        assert await b.period_seed("budget", 0, T0 + 3600) == 10, "the other process sees it"
        assert await b.period_add("budget", 7, T0 + 3600) == 17
        assert await a.period_total("budget") == 17
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_windows_fall_back_to_this_process_while_redis_is_down() -> None:
    link = SharedStateLink("redis://127.0.0.1:1/0")
    try:
        windows = RedisWindows(link)
        assert (await windows.take("k", 1, 1, T0, 60)).admitted
        assert link.degraded
        assert not (await windows.take("k", 1, 1, T0 + 1, 60)).admitted, "counted locally"
    finally:
        await link.aclose()
