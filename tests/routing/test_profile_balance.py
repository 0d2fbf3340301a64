"""Reading rate-limit headers, and the order profiles are tried in by ``profile_selection``."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from palyra.routing.profile_balance import ProfileBalancer
from palyra.routing.rate_limits import parse_duration, read_rate_limits

WALL = datetime(2026, 12, 4, 1, 0, tzinfo=UTC).timestamp()


def ident(p: str) -> str:
    return p


def test_openai_durations_in_every_shape_they_are_sent() -> None:
    assert parse_duration("6ms") == 0.006
    assert parse_duration("17.5s") == 17.5
    assert parse_duration("1m0s") == 60.0
    assert parse_duration("2h3m4s") == 7384.0
    assert parse_duration("soon") is None and parse_duration("") is None


@given(st.integers(0, 10), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_a_written_duration_reads_back(h: int, m: int, s: int, ms: int) -> None:
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + f"{s}s" + (f"{ms}ms" if ms else "")
    assert parse_duration(text) == h * 3600 + m * 60 + s + ms / 1000


def test_the_tightest_openai_limit_is_the_reading() -> None:
    reading = read_rate_limits(
        {
            "x-ratelimit-limit-requests": "100",
            "x-ratelimit-remaining-requests": "80",
            "x-ratelimit-reset-requests": "12s",
            "x-ratelimit-limit-tokens": "10000",
            "x-ratelimit-remaining-tokens": "1000",
            "x-ratelimit-reset-tokens": "1m0s",
        },
        WALL,
    )
    assert reading is not None
    assert (reading.kind, reading.share, reading.remaining, reading.reset_s) == (
        "tokens",
        0.1,
        1000,
        60.0,
    )


def test_anthropic_headers_with_an_rfc3339_reset() -> None:
    reading = read_rate_limits(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "5",
            "anthropic-ratelimit-requests-reset": "2026-12-04T01:00:30Z",
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "7000",
        },
        WALL,
    )
    assert reading is not None
    assert (reading.kind, reading.share, reading.reset_s) == ("requests", 0.1, 30.0)


def test_headers_without_a_limit_give_no_reading() -> None:
    assert read_rate_limits({"x-ratelimit-remaining-requests": "3"}, WALL) is None
    assert read_rate_limits({"x-ratelimit-limit-requests": "x", "x-request-id": "r"}, WALL) is None


@given(st.integers(2, 6), st.integers(1, 5))
def test_round_robin_starts_each_profile_equally_often(profiles: int, rounds: int) -> None:
    balancer = ProfileBalancer()
    names = [f"p{i}" for i in range(profiles)]
    firsts = [
        balancer.order("up", "round_robin", names, ident, 0.0)[0] for _ in range(profiles * rounds)
    ]
    assert all(firsts.count(n) == rounds for n in names)
    assert sorted(balancer.order("up", "round_robin", names, ident, 0.0)) == names  # all kept


def test_ordered_and_a_single_profile_keep_the_sources_order() -> None:
    balancer = ProfileBalancer()
    assert balancer.order("up", "ordered", ["a", "b"], ident, 0.0) == ["a", "b"]
    assert balancer.order("up", "rate_limit", ["a"], ident, 0.0) == ["a"]


def test_rate_limit_orders_by_share_left_until_the_reading_resets() -> None:
    balancer = ProfileBalancer(wall=lambda: WALL)
    limits = {"x-ratelimit-limit-requests": "10", "x-ratelimit-reset-requests": "30s"}
    balancer.observe("up", "a", {**limits, "x-ratelimit-remaining-requests": "2"}, 100.0)
    balancer.observe("up", "b", {**limits, "x-ratelimit-remaining-requests": "6"}, 100.0)
    assert balancer.order("up", "rate_limit", ["a", "b", "c"], ident, 110.0) == ["c", "b", "a"]
    # 30 s later both readings have reset: everyone counts as full, the source's order again
    assert balancer.order("up", "rate_limit", ["a", "b", "c"], ident, 130.0) == ["a", "b", "c"]


def test_a_429_empties_a_profile_until_its_retry_after() -> None:
    balancer = ProfileBalancer()
    balancer.exhausted("up", "a", 5.0, 0.0)
    assert balancer.order("up", "rate_limit", ["a", "b"], ident, 4.0) == ["b", "a"]
    assert balancer.order("up", "rate_limit", ["a", "b"], ident, 5.0) == ["a", "b"]
    assert balancer.share("other", "a", 1.0) == 1.0  # per provider
