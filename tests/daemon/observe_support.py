"""What the observability tests share: a clock they move by hand and a trail with a failover."""

from __future__ import annotations

from palyra.routing.trail import Attempt, AttemptTrail


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failover_trail() -> AttemptTrail:
    """A request that was rate limited on "fast" and answered by "slow"."""

    def attempt(model: str, outcome: str) -> Attempt:
        return Attempt(model, "openai-main", f"up-{model}", None, outcome, None, 0, 0.0, 0.1, 0.0)

    return AttemptTrail("fast", 0.0, [attempt("fast", "rate_limited"), attempt("slow", "ok")])
