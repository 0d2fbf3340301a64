"""What a job does when runs collide, when the daemon was down, and when a run fails: pure rules.

The scheduler asks these functions and does what they answer, so each rule is tested here on plain
data, in both directions, without a clock, a store or a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class OverlapPolicy(StrEnum):
    """A run is due while an earlier run of the same job is still going."""

    SKIP = "skip"  # record the new time as skipped (overlap)
    QUEUE_ONE = "queue_one"  # keep one run waiting; further ones are skipped
    REPLACE = "replace"  # cancel the running one, start the new one
    ALLOW = "allow"  # run side by side


class MisfirePolicy(StrEnum):
    """Scheduled times that passed while no scheduler was running (downtime, a long pause)."""

    SKIP = "skip"  # record them as skipped (misfire); wait for the next time
    RUN_ONCE = "run_once"  # run once for the latest missed time, skip the rest
    RUN_ALL = "run_all"  # run each missed time, up to ``max_catch_up``, oldest first


class OverlapAction(StrEnum):
    START = "start"
    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"


def decide_overlap(policy: OverlapPolicy, *, running: int, queued: int) -> OverlapAction:
    """What to do with a due run, given how many runs of its job are running and queued."""
    if running == 0:
        return OverlapAction.START
    if policy is OverlapPolicy.ALLOW:
        return OverlapAction.START
    if policy is OverlapPolicy.REPLACE:
        return OverlapAction.REPLACE
    if policy is OverlapPolicy.QUEUE_ONE and queued == 0:
        return OverlapAction.QUEUE
    return OverlapAction.SKIP


@dataclass(frozen=True, slots=True)
class MisfirePlan:
    """Which missed times run, and which are recorded as skipped and why."""

    run: tuple[datetime, ...] = ()
    skipped: tuple[tuple[datetime, str], ...] = field(default_factory=tuple)


def plan_misfire(
    missed: list[datetime],
    *,
    now: datetime,
    policy: MisfirePolicy,
    catch_up_window: timedelta,
    max_catch_up: int,
) -> MisfirePlan:
    """Sort the times that fell due while nobody ran them (oldest first) into run and skipped.

    A time older than ``catch_up_window`` is never run late: it is skipped as ``misfire_expired``.
    """
    fresh = [t for t in missed if now - t <= catch_up_window]
    skipped = [(t, "misfire_expired") for t in missed if now - t > catch_up_window]
    if policy is MisfirePolicy.SKIP or not fresh:
        skipped += [(t, "misfire") for t in fresh]
        return MisfirePlan((), tuple(sorted(skipped)))
    if policy is MisfirePolicy.RUN_ONCE:
        skipped += [(t, "misfire_coalesced") for t in fresh[:-1]]
        return MisfirePlan((fresh[-1],), tuple(sorted(skipped)))
    run = fresh[-max_catch_up:] if max_catch_up > 0 else []
    skipped += [(t, "misfire_over_limit") for t in fresh[: len(fresh) - len(run)]]
    return MisfirePlan(tuple(run), tuple(sorted(skipped)))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` in all (1 = no retry); the n-th retry waits ``backoff_s[n-1]`` (the last repeats)."""

    attempts: int = 1
    backoff_s: tuple[float, ...] = (30.0, 120.0, 600.0)

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 20:
            raise ValueError(f"retry attempts must be 1..20, got {self.attempts}")
        if not self.backoff_s or any(b < 0 for b in self.backoff_s):
            raise ValueError("the retry backoff ladder needs one or more non-negative delays")

    def delay_before(self, attempt: int) -> float | None:
        """Seconds to wait before attempt number ``attempt`` (2 = first retry); None: no more tries."""
        if attempt <= 1:
            return 0.0
        if attempt > self.attempts:
            return None
        return self.backoff_s[min(attempt - 2, len(self.backoff_s) - 1)]


# Transient causes; the FailureClass values an agent run reports are among them.
RETRYABLE_CATEGORIES = frozenset(
    {
        "upstream",
        "timeout",
        "rate_limited",
        "interrupted",
        "connection",
        "upstream_unavailable",
        "stream_interrupted",
        "circuit_open",
    }
)


def should_retry(policy: RetryPolicy, *, attempt: int, category: str) -> float | None:
    """The delay before the next attempt after a failure of ``category``, or None to stop."""
    if category not in RETRYABLE_CATEGORIES:
        return None
    return policy.delay_before(attempt + 1)


def jitter_offset(job_id: str, scheduled_for: datetime, max_jitter_s: float) -> float:
    """A stable offset in [0, max_jitter_s] for one job and time: every replica computes the same one."""
    if max_jitter_s <= 0:
        return 0.0
    digest = hashlib.sha256(f"{job_id}|{scheduled_for.isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return fraction * max_jitter_s
