from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from palyra.cron.policies import (
    MisfirePolicy,
    OverlapAction,
    OverlapPolicy,
    RetryPolicy,
    decide_overlap,
    jitter_offset,
    plan_misfire,
    should_retry,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def ago(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("policy", "running", "queued", "action"),
    [
        (OverlapPolicy.SKIP, 0, 0, OverlapAction.START),
        (OverlapPolicy.SKIP, 1, 0, OverlapAction.SKIP),
        (OverlapPolicy.QUEUE_ONE, 0, 0, OverlapAction.START),
        (OverlapPolicy.QUEUE_ONE, 1, 0, OverlapAction.QUEUE),
        (OverlapPolicy.QUEUE_ONE, 1, 1, OverlapAction.SKIP),
        (OverlapPolicy.REPLACE, 0, 0, OverlapAction.START),
        (OverlapPolicy.REPLACE, 1, 0, OverlapAction.REPLACE),
        (OverlapPolicy.ALLOW, 0, 0, OverlapAction.START),
        (OverlapPolicy.ALLOW, 3, 0, OverlapAction.START),
    ],
)
def test_overlap(policy: OverlapPolicy, running: int, queued: int, action: OverlapAction) -> None:
    assert decide_overlap(policy, running=running, queued=queued) is action


MISSED = [ago(50), ago(40), ago(30), ago(20), ago(10)]
WINDOW = timedelta(minutes=35)


def test_misfire_skip_runs_nothing() -> None:
    plan = plan_misfire(
        MISSED, now=NOW, policy=MisfirePolicy.SKIP, catch_up_window=WINDOW, max_catch_up=5
    )
    assert plan.run == ()
    assert [r for _, r in plan.skipped] == ["misfire_expired"] * 2 + ["misfire"] * 3


def test_misfire_run_once_runs_the_latest_in_the_window() -> None:
    plan = plan_misfire(
        MISSED, now=NOW, policy=MisfirePolicy.RUN_ONCE, catch_up_window=WINDOW, max_catch_up=5
    )
    assert plan.run == (ago(10),)
    assert dict(plan.skipped) == {
        ago(50): "misfire_expired",
        ago(40): "misfire_expired",
        ago(30): "misfire_coalesced",
        ago(20): "misfire_coalesced",
    }


def test_misfire_run_all_up_to_the_limit_oldest_first() -> None:
    plan = plan_misfire(
        MISSED, now=NOW, policy=MisfirePolicy.RUN_ALL, catch_up_window=WINDOW, max_catch_up=2
    )
    assert plan.run == (ago(20), ago(10))
    assert dict(plan.skipped)[ago(30)] == "misfire_over_limit"
    everything = plan_misfire(
        MISSED,
        now=NOW,
        policy=MisfirePolicy.RUN_ALL,
        catch_up_window=timedelta(hours=2),
        max_catch_up=10,
    )
    assert everything.run == tuple(MISSED) and everything.skipped == ()


def test_misfire_outside_the_window_never_runs_late() -> None:
    for policy in MisfirePolicy:
        plan = plan_misfire(
            [ago(90)], now=NOW, policy=policy, catch_up_window=WINDOW, max_catch_up=5
        )
        assert plan.run == () and plan.skipped == ((ago(90), "misfire_expired"),)


@given(
    st.lists(st.integers(min_value=1, max_value=500), unique=True).map(sorted),
    st.sampled_from(list(MisfirePolicy)),
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=0, max_value=600),
)
def test_misfire_plan_accounts_for_every_missed_time_once(
    minutes: list[int], policy: MisfirePolicy, limit: int, window: int
) -> None:
    missed = sorted(ago(m) for m in minutes)
    plan = plan_misfire(
        missed,
        now=NOW,
        policy=policy,
        catch_up_window=timedelta(minutes=window),
        max_catch_up=limit,
    )
    accounted = list(plan.run) + [t for t, _ in plan.skipped]
    assert sorted(accounted) == missed
    assert len(plan.run) <= max(limit, 1)


def test_retry_ladder_both_ways() -> None:
    policy = RetryPolicy(attempts=3, backoff_s=(5.0, 60.0))
    assert should_retry(policy, attempt=1, category="upstream") == 5.0
    assert should_retry(policy, attempt=2, category="timeout") == 60.0
    assert should_retry(policy, attempt=3, category="upstream") is None  # attempts used up
    assert should_retry(policy, attempt=1, category="config") is None  # not retryable
    assert (
        should_retry(RetryPolicy(), attempt=1, category="upstream") is None
    )  # no retries by default
    assert RetryPolicy(attempts=5, backoff_s=(1.0,)).delay_before(5) == 1.0  # the last repeats


def test_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=r"1\.\.20"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="non-negative"):
        RetryPolicy(attempts=2, backoff_s=(-1.0,))


@given(
    st.text(min_size=1, max_size=30),
    st.integers(min_value=0, max_value=10**9),
    st.floats(min_value=0.001, max_value=3600),
)
def test_jitter_within_bounds_and_stable(job_id: str, seconds: int, bound: float) -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    offset = jitter_offset(job_id, when, bound)
    assert 0 <= offset <= bound
    assert jitter_offset(job_id, when, bound) == offset


def test_jitter_spreads_and_zero_means_none() -> None:
    offsets = {jitter_offset(f"job{i}", NOW, 60.0) for i in range(50)}
    assert len(offsets) == 50 and max(offsets) - min(offsets) > 30
    assert jitter_offset("job", NOW, 0) == 0.0
