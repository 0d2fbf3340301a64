import random

import pytest

from palyra.config.schema import ModelProviderRegistryConfig
from palyra.model import ErrorEnvelope, FailureClass
from palyra.routing import RetryPolicy, backoff_delay, decide_retry

POLICY = RetryPolicy(max_retries=3, base_s=0.1, cap_s=0.5, retry_after_cap_s=10.0)


def envelope(fc: FailureClass, retry_after_s: float | None = None) -> ErrorEnvelope:
    return ErrorEnvelope.of(fc, "x", retry_after_s=retry_after_s)


def test_backoff_table_with_seeded_rng_is_full_jitter_under_a_growing_capped_ceiling() -> None:
    rng = random.Random(42)
    delays = [backoff_delay(POLICY, i, rng) for i in range(5)]
    check = random.Random(42)
    expected = [check.uniform(0, c) for c in (0.1, 0.2, 0.4, 0.5, 0.5)]
    assert delays == pytest.approx(expected)
    for delay, ceiling in zip(delays, (0.1, 0.2, 0.4, 0.5, 0.5), strict=True):
        assert 0 <= delay <= ceiling


def test_policy_reads_milliseconds_from_config() -> None:
    cfg = ModelProviderRegistryConfig(
        max_retries=4, retry_backoff_ms=200, retry_backoff_max_ms=900, retry_after_cap_ms=1500
    )
    assert RetryPolicy.from_config(cfg) == RetryPolicy(4, 0.2, 0.9, 1.5)


def test_retry_after_is_waited_exactly_even_when_jitter_would_be_longer() -> None:
    policy = RetryPolicy(max_retries=2, base_s=5.0, cap_s=5.0, retry_after_cap_s=10.0)
    decision = decide_retry(
        policy, envelope(FailureClass.RATE_LIMITED, 0.25), 0, random.Random(1), time_left_s=60
    )
    assert decision.retry and decision.delay_s == 0.25


def test_retry_after_beyond_the_cap_means_moving_on() -> None:
    decision = decide_retry(
        POLICY, envelope(FailureClass.RATE_LIMITED, 11.0), 0, random.Random(1), time_left_s=60
    )
    assert not decision.retry
    assert "exceeds the cap" in decision.reason


def test_no_wait_that_would_cross_the_deadline() -> None:
    decision = decide_retry(
        POLICY, envelope(FailureClass.RATE_LIMITED, 2.0), 0, random.Random(1), time_left_s=1.5
    )
    assert not decision.retry
    assert "deadline" in decision.reason


@pytest.mark.parametrize(
    "fc",
    [
        FailureClass.INVALID_REQUEST,
        FailureClass.CONTENT_POLICY,
        FailureClass.CONTEXT_TOO_LONG,
        FailureClass.AUTH_INVALID,
        FailureClass.QUOTA_EXHAUSTED,
    ],
)
def test_non_retryable_classes_are_never_retried(fc: FailureClass) -> None:
    assert not decide_retry(POLICY, envelope(fc), 0, random.Random(1), time_left_s=60).retry


def test_retries_stop_after_max_retries() -> None:
    rng = random.Random(3)
    env = envelope(FailureClass.UPSTREAM_UNAVAILABLE)
    allowed = [decide_retry(POLICY, env, i, rng, time_left_s=60).retry for i in range(5)]
    assert allowed == [True, True, True, False, False]
