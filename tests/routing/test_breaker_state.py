import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.config.schema import BreakerConfig
from palyra.model import ErrorEnvelope, FailureClass
from palyra.routing import Admission, BreakerState
from palyra.routing.breaker_state import ADMITTED, WINDOW_BUCKETS, _add, admit, record

CFG = BreakerConfig(
    consecutive_failures=3,
    error_ratio=0.5,
    window_s=60,
    min_requests=10,
    cooldown_ladder_s=[30, 60, 300, 1500],
    auth_disable_s=3600,
)
DOWN = ErrorEnvelope.of(FailureClass.CONNECTION, "refused")


def fail(state: BreakerState, now: float, env: ErrorEnvelope = DOWN, **kw: bool) -> BreakerState:
    return record(state, "target", now, CFG, env, probe=kw.get("probe", False))


def ok(state: BreakerState, now: float, *, probe: bool = False) -> BreakerState:
    return record(state, "target", now, CFG, None, probe=probe)


def open_breaker() -> BreakerState:
    state = BreakerState()
    for _ in range(3):
        state = fail(state, 0.0)
    return state


def test_opens_after_n_consecutive_failures_and_admits_nobody_during_cooldown() -> None:
    state = fail(fail(BreakerState(), 0), 0)
    assert state.phase == "closed"
    state = fail(state, 0)
    assert state.phase == "open" and state.open_until == 30
    for now in (0.0, 10.0, 29.999):
        admission, after = admit(state, now, CFG)
        assert not admission.allowed and after == state


def test_success_resets_the_consecutive_count() -> None:
    state = ok(fail(fail(BreakerState(), 0), 0), 0)
    assert fail(fail(state, 0), 0).phase == "closed"


def test_half_open_admits_exactly_one_probe() -> None:
    state = open_breaker()
    probe, state = admit(state, 30.0, CFG)
    assert probe.allowed and probe.probe and state.phase == "half_open"
    second, _ = admit(state, 30.5, CFG)
    assert not second.allowed


def test_failed_probe_reopens_with_the_next_longer_cooldown_and_success_resets_the_ladder() -> None:
    state = open_breaker()
    _, state = admit(state, 30.0, CFG)
    state = fail(state, 31.0, probe=True)
    assert state.phase == "open" and state.open_until == 31 + 60
    _, state = admit(state, 91.0, CFG)
    state = fail(state, 91.0, probe=True)
    assert state.open_until == 91 + 300
    _, state = admit(state, 391.0, CFG)
    state = ok(state, 391.0, probe=True)
    assert state.phase == "closed" and state.ladder_index == 0
    for _ in range(3):
        state = fail(state, 400.0)
    assert state.open_until == 430.0


def test_ladder_stays_on_its_last_step() -> None:
    state = open_breaker()
    now = 0.0
    for _ in range(6):
        now = state.open_until
        _, state = admit(state, now, CFG)
        state = fail(state, now, probe=True)
    assert state.open_until - now == 1500


def test_ratio_trigger_waits_for_min_requests() -> None:
    state = BreakerState()
    # Alternate so consecutive failures never reach 3; 4 failures in 8 is 50% but under min 10.
    for i in range(8):
        state = fail(state, float(i)) if i % 2 else ok(state, float(i))
    assert state.phase == "closed"
    state = ok(state, 8.0)
    state = fail(state, 9.0)
    assert state.phase == "open"


def test_ratio_window_forgets_old_outcomes() -> None:
    state = BreakerState()
    for i in range(9):
        state = fail(state, float(i)) if i % 2 else ok(state, float(i))
    state = fail(state, 200.0)  # the first nine fell out of the 60 s window
    assert state.phase == "closed"


def test_failures_about_the_request_do_not_count() -> None:
    state = BreakerState()
    for fc in (
        FailureClass.INVALID_REQUEST,
        FailureClass.CONTENT_POLICY,
        FailureClass.CONTEXT_TOO_LONG,
    ) * 3:
        state = fail(state, 0.0, ErrorEnvelope.of(fc, "bad request"))
    assert state == BreakerState()


def test_rate_limit_counts_against_the_credential_not_the_target_when_a_credential_is_used() -> (
    None
):
    limited = ErrorEnvelope.of(FailureClass.RATE_LIMITED, "slow down")
    target = BreakerState()
    for _ in range(3):
        target = record(target, "target", 0.0, CFG, limited, probe=False, credentialed=True)
    assert target.phase == "closed"
    cred = BreakerState()
    for _ in range(3):
        cred = record(cred, "credential", 0.0, CFG, limited, probe=False)
    assert cred.phase == "open"


def test_auth_and_quota_failures_disable_a_credential_for_auth_disable_s() -> None:
    for fc in (
        FailureClass.AUTH_INVALID,
        FailureClass.AUTH_EXPIRED,
        FailureClass.PERMISSION_DENIED,
        FailureClass.QUOTA_EXHAUSTED,
    ):
        state = record(
            BreakerState(), "credential", 10.0, CFG, ErrorEnvelope.of(fc, "no"), probe=False
        )
        assert not admit(state, 10.0 + 3599, CFG)[0].allowed
        assert admit(state, 10.0 + 3600, CFG)[0].allowed


def test_a_neutral_outcome_frees_the_probe_slot_without_a_verdict() -> None:
    state = open_breaker()
    _, state = admit(state, 30.0, CFG)
    state = fail(state, 30.0, ErrorEnvelope.of(FailureClass.INVALID_REQUEST, "bad"), probe=True)
    assert state.phase == "half_open"
    assert admit(state, 30.0, CFG)[0].probe


def test_a_probe_whose_caller_vanished_is_replaced_after_a_cooldown() -> None:
    state = open_breaker()
    _, state = admit(state, 30.0, CFG)
    assert not admit(state, 89.0, CFG)[0].allowed
    assert admit(state, 91.0, CFG)[0].probe


def test_state_round_trips_through_a_plain_dict() -> None:
    state = fail(ok(BreakerState(), 1.0), 2.0)
    assert BreakerState.from_dict(state.to_dict()) == state
    assert BreakerState.from_dict(open_breaker().to_dict()) == open_breaker()


def reference_add(
    buckets: tuple[tuple[float, int, int], ...], now: float, cfg: BreakerConfig, *, ok: bool
) -> tuple[tuple[float, int, int], ...]:
    """The rolling window's general rule, without ``_add``'s fast path for the newest bucket."""
    width = cfg.window_s / WINDOW_BUCKETS
    start = now - (now % width)
    kept = [b for b in buckets if b[0] > now - cfg.window_s]
    if kept and kept[-1][0] == start:
        s, good, bad = kept[-1]
        kept[-1] = (s, good + ok, bad + (not ok))
    else:
        kept.append((start, int(ok), int(not ok)))
    return tuple(kept[-WINDOW_BUCKETS:])


# Bucket starts on the 6 s grid of CFG's 60 s window (where outcomes land), plus odd ones.
starts = st.one_of(st.integers(-5, 40).map(lambda i: i * 6.0), st.floats(-30, 240))
windows = st.lists(st.tuples(starts, st.integers(0, 50), st.integers(0, 50)), max_size=13)


@settings(max_examples=500, deadline=None)
@given(
    buckets=windows.map(tuple),
    now=st.one_of(st.integers(0, 40).map(lambda i: i * 6.0 + 0.5), st.floats(0, 240)),
    ok=st.booleans(),
)
def test_the_newest_bucket_fast_path_adds_exactly_as_the_general_rule(
    buckets: tuple[tuple[float, int, int], ...], now: float, ok: bool
) -> None:
    assert _add(buckets, now, CFG, ok) == reference_add(buckets, now, CFG, ok=ok)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 20), st.booleans()), max_size=60))
def test_windows_built_by_outcomes_match_the_general_rule(steps: list[tuple[float, bool]]) -> None:
    """Windows as real traffic builds them (ascending starts), where the fast path mostly runs."""
    now = 0.0
    fast: tuple[tuple[float, int, int], ...] = ()
    general = fast
    for gap, ok in steps:
        now += gap
        fast, general = _add(fast, now, CFG, ok), reference_add(general, now, CFG, ok=ok)
        assert fast == general


def test_closed_breakers_share_one_admission() -> None:
    first, _ = admit(BreakerState(), 1.0, CFG)
    second, _ = admit(ok(BreakerState(), 1.0), 2.0, CFG)
    assert first is second is ADMITTED and first == Admission(True)


def test_states_are_immutable_and_compare_by_value() -> None:
    state = fail(BreakerState(), 1.0)
    assert state == fail(BreakerState(), 1.0) and state != BreakerState()
    with pytest.raises(AttributeError):
        state.phase = "open"  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(
    buckets=windows.map(tuple),
    failures=st.integers(0, 2),
    ladder=st.integers(0, 3),
    disabled=st.sampled_from([0.0, 50.0]),
    now=st.floats(0, 240),
    probe=st.booleans(),
)
def test_a_success_on_a_closed_breaker_is_a_fresh_closed_state_with_the_outcome_added(
    buckets: tuple[tuple[float, int, int], ...],
    failures: int,
    ladder: int,
    disabled: float,
    now: float,
    probe: bool,
) -> None:
    state = BreakerState(
        consecutive_failures=failures, ladder_index=ladder, disabled_until=disabled, buckets=buckets
    )
    expected = BreakerState(buckets=reference_add(buckets, now, CFG, ok=True))
    assert record(state, "target", now, CFG, None, probe=probe) == expected
