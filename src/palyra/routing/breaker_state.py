"""Circuit-breaker state transitions as pure functions on a small serialisable state.

Two kinds of key share one machine: a *target* (provider, model) opens on failures that say the
target is unwell; a *credential* (provider, profile) additionally gets disabled outright by auth
and quota failures, because retrying a revoked key or an empty balance only burns time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from palyra.config.schema import BreakerConfig
from palyra.model import ErrorEnvelope, FailureClass

KeyKind = Literal["target", "credential"]
Phase = Literal["closed", "open", "half_open"]
WINDOW_BUCKETS = 10

# Failures that say something about the upstream target itself.
TARGET_FAILURES = frozenset(
    {
        FailureClass.TIMEOUT,
        FailureClass.CONNECTION,
        FailureClass.UPSTREAM_UNAVAILABLE,
        FailureClass.MALFORMED_RESPONSE,
        FailureClass.RATE_LIMITED,
    }
)
# Failures that make a credential useless until someone changes it (or time passes).
CREDENTIAL_DISABLING = frozenset(
    {
        FailureClass.AUTH_INVALID,
        FailureClass.AUTH_EXPIRED,
        FailureClass.PERMISSION_DENIED,
        FailureClass.QUOTA_EXHAUSTED,
    }
)


@dataclass(frozen=True, slots=True)
class BreakerKey:
    kind: KeyKind
    provider: str
    name: str  # the model id for targets, the auth profile id for credentials
    # ``kind:provider/name``, the store key and health scope; built once, not compared.
    text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", f"{self.kind}:{self.provider}/{self.name}")


class BreakerState(NamedTuple):
    """Everything a breaker remembers; small enough for one Redis hash per key.

    Immutable like a frozen dataclass, but built in one step: every success makes a new state,
    and a frozen dataclass sets each of its seven fields through ``object.__setattr__``.
    """

    phase: Phase = "closed"
    consecutive_failures: int = 0
    open_until: float = 0.0
    ladder_index: int = 0
    probe_started_at: float | None = None
    disabled_until: float = 0.0
    # Rolling window as fixed buckets: (bucket start, successes, failures).
    buckets: tuple[tuple[float, int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "consecutive_failures": self.consecutive_failures,
            "open_until": self.open_until,
            "ladder_index": self.ladder_index,
            "probe_started_at": self.probe_started_at,
            "disabled_until": self.disabled_until,
            "buckets": [list(b) for b in self.buckets],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BreakerState:
        return cls(
            phase=data["phase"],
            consecutive_failures=int(data["consecutive_failures"]),
            open_until=float(data["open_until"]),
            ladder_index=int(data["ladder_index"]),
            probe_started_at=(
                None if data["probe_started_at"] is None else float(data["probe_started_at"])
            ),
            disabled_until=float(data["disabled_until"]),
            buckets=tuple((float(b[0]), int(b[1]), int(b[2])) for b in data["buckets"]),
        )


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to "may a request go there now?"; a probe must report back."""

    allowed: bool
    probe: bool = False
    retry_in_s: float = 0.0


# A closed breaker without failures, cooldown, probe or disablement: all fields but the window.
_FRESH = BreakerState()[:-1]
_new_state = tuple.__new__

# The answer of every closed breaker: shared, as admissions are frozen (saves one per request).
ADMITTED = Admission(True)


def admit(state: BreakerState, now: float, cfg: BreakerConfig) -> tuple[Admission, BreakerState]:
    """Closed admits all; open admits none; after the cooldown exactly one probe is admitted."""
    if now < state.disabled_until:
        return Admission(False, retry_in_s=state.disabled_until - now), state
    if state.phase == "closed":
        return ADMITTED, state
    if state.phase == "open" and now < state.open_until:
        return Admission(False, retry_in_s=state.open_until - now), state
    if state.phase == "half_open" and state.probe_started_at is not None:
        # A probe whose caller vanished without reporting must not block the key forever.
        stale_after = _cooldown(cfg, state.ladder_index)
        if now - state.probe_started_at < stale_after:
            return Admission(False, retry_in_s=state.probe_started_at + stale_after - now), state
    return Admission(True, probe=True), state._replace(phase="half_open", probe_started_at=now)


def record(
    state: BreakerState,
    kind: KeyKind,
    now: float,
    cfg: BreakerConfig,
    envelope: ErrorEnvelope | None,
    *,
    probe: bool,
    credentialed: bool = False,
) -> BreakerState:
    """Fold one outcome in. ``envelope`` is None for success.

    ``credentialed`` says a credential key took this call too: a rate limit is then the
    credential's problem, not the target's.
    """
    if envelope is None:
        if state.phase == "closed":
            # The usual success, once per request: a fresh closed state with the outcome added,
            # here rather than in ``_succeed`` and built as ``_make`` builds it (in C, where the
            # NamedTuple's own ``__new__`` is a Python call), as calls cost.
            return _new_state(BreakerState, (*_FRESH, _add(state.buckets, now, cfg, True)))
        return _succeed(state, now, cfg, probe=probe)
    fc = envelope.failure_class
    if kind == "credential" and fc in CREDENTIAL_DISABLING:
        released = release(state, probe=probe)
        return released._replace(disabled_until=now + cfg.auth_disable_s)
    if not counts(kind, fc, credentialed=credentialed):
        return release(state, probe=probe)
    return _fail(state, now, cfg, probe=probe)


def counts(kind: KeyKind, fc: FailureClass, *, credentialed: bool) -> bool:
    """Whether a failure counts against this kind of key."""
    if kind == "credential":
        return fc is FailureClass.RATE_LIMITED
    if fc is FailureClass.RATE_LIMITED and credentialed:
        return False
    return fc in TARGET_FAILURES


def release(state: BreakerState, *, probe: bool) -> BreakerState:
    """Give back a probe slot without a verdict (the call said nothing about the target)."""
    if probe and state.phase == "half_open":
        return state._replace(probe_started_at=None)
    return state


def _succeed(state: BreakerState, now: float, cfg: BreakerConfig, *, probe: bool) -> BreakerState:
    if state.phase == "closed":
        return BreakerState(buckets=_add(state.buckets, now, cfg, True))
    if not probe:
        # A straggler admitted before the breaker opened; only the probe decides.
        return state._replace(buckets=_add(state.buckets, now, cfg, True))
    return BreakerState()


def _fail(state: BreakerState, now: float, cfg: BreakerConfig, *, probe: bool) -> BreakerState:
    if state.phase != "closed":
        if not probe:
            return state
        return _open(state, now, cfg)
    buckets = _add(state.buckets, now, cfg, False)
    failed = state._replace(consecutive_failures=state.consecutive_failures + 1, buckets=buckets)
    if failed.consecutive_failures >= cfg.consecutive_failures:
        return _open(failed, now, cfg)
    ok = sum(b[1] for b in buckets)
    bad = sum(b[2] for b in buckets)
    if ok + bad >= cfg.min_requests and bad / (ok + bad) >= cfg.error_ratio:
        return _open(failed, now, cfg)
    return failed


def _open(state: BreakerState, now: float, cfg: BreakerConfig) -> BreakerState:
    cooldown = _cooldown(cfg, state.ladder_index)
    return state._replace(
        phase="open",
        open_until=now + cooldown,
        ladder_index=min(state.ladder_index + 1, max(len(cfg.cooldown_ladder_s), 1) - 1),
        probe_started_at=None,
        consecutive_failures=0,
        buckets=(),
    )


def fresh_after(state: BreakerState, cfg: BreakerConfig) -> float | None:
    """The moment from which ``state`` decides exactly as a fresh ``BreakerState()`` would, or
    None when time alone never gets it there.

    A shared store may forget a state from then on (a Redis TTL) without changing any answer:
    only a closed breaker without failures counted, probe or ladder step qualifies, once its
    disablement has run out and every bucket has left the window (``_add`` drops those).
    """
    if (
        state.phase != "closed"
        or state.consecutive_failures
        or state.ladder_index
        or state.probe_started_at is not None
    ):
        return None
    newest = max((b[0] for b in state.buckets), default=None)
    window_ends = float("-inf") if newest is None else newest + cfg.window_s
    return max(state.disabled_until, window_ends)


def _cooldown(cfg: BreakerConfig, index: int) -> float:
    ladder = cfg.cooldown_ladder_s or [30.0]
    return ladder[min(index, len(ladder) - 1)]


def _add(
    buckets: tuple[tuple[float, int, int], ...], now: float, cfg: BreakerConfig, ok: bool
) -> tuple[tuple[float, int, int], ...]:
    """Add one outcome to a rolling window of WINDOW_BUCKETS fixed-width buckets."""
    window = cfg.window_s
    width = window / WINDOW_BUCKETS
    start = now - (now % width)
    cutoff = now - window
    if 0 < len(buckets) <= WINDOW_BUCKETS:
        last = buckets[-1]
        # The usual case: the outcome lands in the newest bucket and none has expired, so only
        # that bucket changes (``min`` finds the oldest start in C instead of filtering them).
        if last[0] == start and min(buckets)[0] > cutoff:
            newest = (last[0], last[1] + ok, last[2] + (not ok))
            return buckets[:-1] + (newest,)  # noqa: RUF005 - concatenation builds it faster
    kept = [b for b in buckets if b[0] > cutoff]
    if kept and kept[-1][0] == start:
        s, good, bad = kept[-1]
        kept[-1] = (s, good + ok, bad + (not ok))
    else:
        kept.append((start, int(ok), int(not ok)))
    return tuple(kept[-WINDOW_BUCKETS:])
