"""The attempt trail: every upstream call one request made, for logs and response headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from palyra.model import FailureClass

if TYPE_CHECKING:
    from palyra.routing.route_decision import RouteDecision


class Attempt(NamedTuple):
    """One upstream call. ``outcome`` is ``ok`` or the failure class value.

    An immutable record like a frozen dataclass, but built in one step: a frozen dataclass sets
    each of its ten fields through ``object.__setattr__`` (measured: 8% of the router's cost).
    """

    model_id: str
    provider_id: str
    upstream_model: str
    profile_id: str | None
    outcome: str
    failure_class: FailureClass | None
    retry_index: int
    started_at: float
    elapsed_s: float
    waited_s: float  # backoff and lease wait spent just before this call

    def to_dict(self) -> dict[str, object]:
        return {
            "model_id": self.model_id,
            "provider_id": self.provider_id,
            "upstream_model": self.upstream_model,
            "profile_id": self.profile_id,
            "outcome": self.outcome,
            "failure_class": self.failure_class.value if self.failure_class else None,
            "retry_index": self.retry_index,
            "started_at": self.started_at,
            "elapsed_s": self.elapsed_s,
            "waited_s": self.waited_s,
        }


@dataclass(frozen=True, slots=True)
class Skip:
    """A candidate (or credential) not called, and why: breaker open, capability, lease limit.

    A skip the caller should see in ``x-palyra-attempts`` (an open breaker) has a ``label``,
    e.g. ``openai-main/gpt-4.1:circuit_open``, and ``position``: how many attempts came before.
    """

    model_id: str
    reason: str
    profile_id: str | None = None
    label: str | None = None
    position: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"model_id": self.model_id, "profile_id": self.profile_id, "reason": self.reason}


@dataclass
class AttemptTrail:
    """All attempts of one routed request, in order, plus the candidates passed over."""

    requested_model: str
    started_at: float
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    finished_at: float | None = None
    route: RouteDecision | None = None  # set when the request named a routing group

    @property
    def failovers(self) -> int:
        """How many times the request moved to a different model."""
        if len(self.attempts) < 2:
            return 0
        return sum(
            1
            for a, b in zip(self.attempts, self.attempts[1:], strict=False)
            if a.model_id != b.model_id
        )

    @property
    def retries(self) -> int:
        return sum(1 for a in self.attempts if a.retry_index > 0)

    @property
    def total_elapsed_s(self) -> float:
        if self.finished_at is None:
            return 0.0 if not self.attempts else self.attempts[-1].started_at - self.started_at
        return self.finished_at - self.started_at

    def header(self) -> str:
        """Compact form for a response header: ``openai-main/gpt-4.1:rate_limited,claude/x:ok``;
        candidates passed over for an open breaker appear in order as ``.../x:circuit_open``."""
        if self.skipped:
            shown = [s for s in self.skipped if s.label is not None]
            if shown:
                return self._with_skips(shown)
        if len(self.attempts) == 1:
            a = self.attempts[0]
            return f"{a.provider_id}/{a.upstream_model}:{a.outcome}"
        return ",".join(f"{a.provider_id}/{a.upstream_model}:{a.outcome}" for a in self.attempts)

    def _with_skips(self, skips: list[Skip]) -> str:
        entries: list[str] = []
        waiting = iter(skips)
        skip = next(waiting, None)
        for done, a in enumerate(self.attempts):
            while skip is not None and skip.position <= done:
                entries.append(skip.label or "")
                skip = next(waiting, None)
            entries.append(f"{a.provider_id}/{a.upstream_model}:{a.outcome}")
        while skip is not None:
            entries.append(skip.label or "")
            skip = next(waiting, None)
        return ",".join(entries)

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "requested_model": self.requested_model,
            "attempts": [a.to_dict() for a in self.attempts],
            "skipped": [s.to_dict() for s in self.skipped],
            "failovers": self.failovers,
            "retries": self.retries,
            "total_elapsed_s": self.total_elapsed_s,
        }
        if self.route is not None:
            body["route"] = self.route.to_dict()
        return body
