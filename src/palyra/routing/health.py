"""Passive health from real traffic: no probes that cost tokens, bounded memory per scope."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from palyra.model import ErrorEnvelope, FailureClass

DEFAULT_WINDOW = 256


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class _Stats:
    window: int
    latencies: deque[float] = field(init=False)
    outcomes: deque[bool] = field(init=False)
    requests: int = 0
    errors: int = 0
    last_failure_class: FailureClass | None = None
    last_failure_at: float | None = None
    last_success_at: float | None = None

    def __post_init__(self) -> None:
        self.latencies = deque(maxlen=self.window)
        self.outcomes = deque(maxlen=self.window)


class TargetLatency(NamedTuple):
    p50_s: float | None
    calls: int  # in the window, failures included
    last_call_at: float | None


@dataclass(frozen=True, slots=True)
class ScopeHealth:
    """What the console shows for one provider, (provider, model) or credential."""

    scope: str
    requests: int
    errors: int
    error_rate: float  # over the recent window, not all time
    p50_s: float | None
    p95_s: float | None
    last_failure_class: FailureClass | None
    last_failure_at: float | None  # wall-clock seconds (Unix time)
    last_success_at: float | None
    breaker: str | None  # None for provider scopes, which have no breaker of their own

    def to_dict(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_s": self.p50_s,
            "p95_s": self.p95_s,
            "last_failure_class": self.last_failure_class.value
            if self.last_failure_class
            else None,
            "last_failure_at": iso_utc(self.last_failure_at),
            "last_success_at": iso_utc(self.last_success_at),
            "breaker": self.breaker,
        }


def iso_utc(at: float | None) -> str | None:
    """Unix time as ISO 8601 in UTC with milliseconds: ``2026-12-03T19:20:14.123Z``."""
    if at is None:
        return None
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class HealthTracker:
    """Latency and error figures per scope, fed by the router after every upstream call.

    Scope names: ``provider:<id>``, ``target:<provider>/<model>``, ``credential:<provider>/<profile>``
    (the latter two match the breaker key names, so breaker state lines up). Calls are timed on
    the routing clock (monotonic); ``wall_offset_s`` (wall clock minus routing clock, taken once
    by whoever builds the tracker) turns those times into wall-clock ones in :meth:`snapshot`.
    """

    def __init__(self, *, window: int = DEFAULT_WINDOW, wall_offset_s: float = 0.0) -> None:
        self._window = window
        self._wall_offset_s = wall_offset_s
        self._stats: dict[str, _Stats] = {}
        self._breakers: dict[str, str] = {}
        # The stats each (provider, model, profile) feeds, so a call does not rebuild scope names.
        self._fed: dict[tuple[str, str, str | None], tuple[_Stats, ...]] = {}

    def observe(
        self,
        provider_id: str,
        model_id: str,
        profile_id: str | None,
        *,
        at: float,
        elapsed_s: float,
        envelope: ErrorEnvelope | None,
    ) -> None:
        fed = self._fed.get((provider_id, model_id, profile_id))
        if fed is None:
            fed = self._fed[provider_id, model_id, profile_id] = self._scopes(
                provider_id, model_id, profile_id
            )
        for stats in fed:
            stats.requests += 1
            stats.outcomes.append(envelope is None)
            if envelope is None:
                stats.latencies.append(elapsed_s)
                stats.last_success_at = at
            else:
                stats.errors += 1
                stats.last_failure_class = envelope.failure_class
                stats.last_failure_at = at

    def _scopes(
        self, provider_id: str, model_id: str, profile_id: str | None
    ) -> tuple[_Stats, ...]:
        scopes = [f"provider:{provider_id}", f"target:{provider_id}/{model_id}"]
        if profile_id is not None:
            scopes.append(f"credential:{provider_id}/{profile_id}")
        found = []
        for scope in scopes:
            stats = self._stats.get(scope)
            if stats is None:
                stats = self._stats[scope] = _Stats(self._window)
            found.append(stats)
        return tuple(found)

    def target_latency(self, provider_id: str, model_id: str) -> TargetLatency:
        """A target's recent calls, p50 of its successes and when it was last called (routing
        clock): what ``lowest_latency`` groups order by. Read, never created here."""
        stats = self._stats.get(f"target:{provider_id}/{model_id}")
        if stats is None:
            return TargetLatency(None, 0, None)
        last = max(stats.last_success_at or -math.inf, stats.last_failure_at or -math.inf)
        return TargetLatency(
            percentile(stats.latencies, 50),
            len(stats.outcomes),
            None if last == -math.inf else last,
        )

    def _wall(self, at: float | None) -> float | None:
        return None if at is None else at + self._wall_offset_s

    def note_breaker(self, scope: str, phase: str) -> None:
        self._breakers[scope] = phase

    def snapshot(self) -> list[ScopeHealth]:
        """Every scope seen so far, sorted by name."""
        result = []
        for scope in sorted(self._stats):
            stats = self._stats[scope]
            recent = len(stats.outcomes)
            failures = recent - sum(stats.outcomes)
            result.append(
                ScopeHealth(
                    scope=scope,
                    requests=stats.requests,
                    errors=stats.errors,
                    error_rate=failures / recent if recent else 0.0,
                    p50_s=percentile(stats.latencies, 50),
                    p95_s=percentile(stats.latencies, 95),
                    last_failure_class=stats.last_failure_class,
                    last_failure_at=self._wall(stats.last_failure_at),
                    last_success_at=self._wall(stats.last_success_at),
                    breaker=None
                    if scope.startswith("provider:")
                    else self._breakers.get(scope, "closed"),
                )
            )
        return result
