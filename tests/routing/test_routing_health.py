import pytest

from palyra.model import ErrorEnvelope, FailureClass
from palyra.routing import Attempt, AttemptTrail, HealthTracker
from palyra.routing.health import percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 50) is None


def test_health_keeps_a_bounded_window_per_scope_and_all_time_counts() -> None:
    health = HealthTracker(window=10)
    for i in range(1000):
        health.observe("p", "m", "work", at=float(i), elapsed_s=float(i % 10), envelope=None)
    health.observe(
        "p",
        "m",
        None,
        at=1000.0,
        elapsed_s=9.0,
        envelope=ErrorEnvelope.of(FailureClass.TIMEOUT, "slow"),
    )
    health.note_breaker("target:p/m", "open")
    by_scope = {s.scope: s for s in health.snapshot()}
    assert set(by_scope) == {"provider:p", "target:p/m", "credential:p/work"}
    target = by_scope["target:p/m"]
    assert target.requests == 1001 and target.errors == 1
    assert target.error_rate == 0.1  # 1 failure among the last 10 outcomes
    assert target.p50_s == 4.0 and target.p95_s == 9.0
    assert target.last_failure_class is FailureClass.TIMEOUT and target.breaker == "open"
    assert by_scope["provider:p"].breaker is None
    assert by_scope["credential:p/work"].requests == 1000
    assert len(health._stats["target:p/m"].latencies) == 10
    assert target.to_dict()["last_failure_class"] == "timeout"


def attempt(model: str, provider: str, outcome: str, retry: int, at: float) -> Attempt:
    fc = None if outcome == "ok" else FailureClass(outcome)
    return Attempt(model, provider, f"up-{model}", None, outcome, fc, retry, at, 0.5, 0.0)


def test_trail_counts_failovers_and_retries_and_renders_a_compact_header() -> None:
    trail = AttemptTrail("default", started_at=10.0)
    trail.attempts += [
        attempt("default", "openai-main", "rate_limited", 0, 10.0),
        attempt("default", "openai-main", "upstream_unavailable", 1, 11.0),
        attempt("claude", "anthropic", "ok", 0, 12.0),
    ]
    trail.finished_at = 12.5
    assert trail.failovers == 1 and trail.retries == 1
    assert trail.total_elapsed_s == 2.5
    assert trail.header() == (
        "openai-main/up-default:rate_limited,openai-main/up-default:upstream_unavailable,"
        "anthropic/up-claude:ok"
    )
    as_dict = trail.to_dict()
    assert as_dict["failovers"] == 1
    assert as_dict["attempts"][0]["failure_class"] == "rate_limited"  # type: ignore[index]


def test_each_call_feeds_its_own_provider_target_and_credential_scopes() -> None:
    health = HealthTracker()
    slow = ErrorEnvelope.of(FailureClass.TIMEOUT, "slow")
    health.observe("p", "m1", "a", at=1.0, elapsed_s=0.1, envelope=None)
    health.observe("p", "m2", None, at=2.0, elapsed_s=0.2, envelope=slow)
    health.observe("p", "m1", None, at=3.0, elapsed_s=0.3, envelope=None)
    health.observe("q", "m1", "a", at=4.0, elapsed_s=0.4, envelope=None)
    health.observe("p", "m1", "a", at=5.0, elapsed_s=0.5, envelope=None)
    counts = {s.scope: (s.requests, s.errors) for s in health.snapshot()}
    assert counts == {
        "provider:p": (4, 1),
        "provider:q": (1, 0),
        "target:p/m1": (3, 0),
        "target:p/m2": (1, 1),
        "target:q/m1": (1, 0),
        "credential:p/a": (2, 0),
        "credential:q/a": (1, 0),
    }
    by_scope = {s.scope: s for s in health.snapshot()}
    assert by_scope["target:p/m1"].last_success_at == 5.0
    assert by_scope["provider:p"].last_failure_at == 2.0


def test_a_single_attempt_trail_has_no_failovers_and_a_one_entry_header() -> None:
    trail = AttemptTrail("default", started_at=10.0)
    assert trail.failovers == 0 and trail.header() == ""
    trail.attempts.append(attempt("default", "openai-main", "ok", 0, 10.0))
    assert trail.failovers == 0 and trail.header() == "openai-main/up-default:ok"


def test_attempts_are_immutable_records_built_by_position_or_name() -> None:
    by_position = attempt("default", "openai-main", "ok", 0, 1.0)
    by_name = Attempt(
        model_id="default",
        provider_id="openai-main",
        upstream_model="up-default",
        profile_id=None,
        outcome="ok",
        failure_class=None,
        retry_index=0,
        started_at=1.0,
        elapsed_s=0.5,
        waited_s=0.0,
    )
    assert by_position == by_name and hash(by_position) == hash(by_name)
    assert by_name.to_dict()["upstream_model"] == "up-default"
    with pytest.raises(AttributeError):
        by_name.outcome = "rate_limited"  # type: ignore[misc]


def test_snapshot_times_are_on_the_wall_clock_and_shown_as_iso_utc() -> None:
    from palyra.routing.health import iso_utc

    health = HealthTracker(wall_offset_s=1_796_000_000.0)
    health.observe("p", "m", None, at=12.5, elapsed_s=0.1, envelope=None)
    [provider, _] = health.snapshot()
    assert provider.last_success_at == 1_796_000_012.5
    assert provider.to_dict()["last_success_at"] == "2026-11-30T00:53:32.500Z"
    assert provider.to_dict()["last_failure_at"] is None
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
