"""What the hot path hands the ledger for one finished request, and the rows made from it.

A request hands over a :class:`UsageFact` (one tuple, no arithmetic); pricing and row building
happen in the ledger's writer, off the request's path (see :mod:`palyra.usage.ledger`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from palyra.model import Usage
from palyra.pricing import PricingTable, cost_nanousd
from palyra.routing.trail import Attempt, AttemptTrail


class UsageFact(NamedTuple):
    """One finished request: who, what it asked, the attempts, the usage and how it ended.

    ``at`` is wall-clock seconds at the end; ``latency_s`` the request's whole time."""

    at: float
    request_id: str
    token_id: str | None
    agent_id: str | None
    run_id: str | None
    requested_model: str | None
    trail: AttemptTrail | None
    usage: Usage | None
    status: int | None
    outcome: str
    latency_s: float


_DAYS: dict[int, tuple[str, date]] = {}


def day_of(at: float) -> tuple[str, date]:
    """The UTC day of ``at`` as text and as a date (cached: the writer asks per request)."""
    index = int(at // 86_400)
    found = _DAYS.get(index)
    if found is None:
        day = datetime.fromtimestamp(index * 86_400, UTC).date()
        if len(_DAYS) > 64:
            _DAYS.clear()
        found = _DAYS[index] = (day.isoformat(), day)
    return found


def fact_cost(
    fact: UsageFact, pricing: PricingTable, kinds: Mapping[str, str]
) -> tuple[str | None, str | None, int | None]:
    """(provider id, upstream model, cost in nano-USD) of the answer; the cost is None when
    the answer's model has no price, 0 when no answer (and so no usage) came back."""
    answered = _answering(fact.trail)
    if answered is None:
        return None, None, 0  # no answer, no usage reported: nothing known to be billed
    if fact.usage is None:
        return answered.provider_id, answered.upstream_model, 0
    kind = kinds.get(answered.provider_id)
    price = (
        None
        if kind is None
        else pricing.price(
            kind,
            answered.upstream_model,
            provider=answered.provider_id,
            on=day_of(fact.at)[1],
        )
    )
    cost = None if price is None else cost_nanousd(fact.usage, price)
    return answered.provider_id, answered.upstream_model, cost


def _answering(trail: AttemptTrail | None) -> Attempt | None:
    if trail is None or not trail.attempts:
        return None
    last = trail.attempts[-1]
    return last if last.outcome == "ok" else None


def rows_of(
    fact: UsageFact,
    pricing: PricingTable,
    kinds: Mapping[str, str],
) -> list[dict[str, Any]]:
    """The ledger rows of one request: the request row (the answer's usage and cost), then
    one row per upstream attempt (the answering one carries the usage; failed ones none)."""
    provider, upstream, cost = fact_cost(fact, pricing, kinds)
    usage = fact.usage
    answered = _answering(fact.trail)
    row: dict[str, Any] = {
        "at_ms": int(fact.at * 1000),
        "day": day_of(fact.at)[0],
        "request_id": fact.request_id,
        "token_id": fact.token_id,
        "agent_id": fact.agent_id,
        "run_id": fact.run_id,
        "requested_model": fact.requested_model,
        "row_kind": "request",
        "attempt_index": None,
        "model_id": answered.model_id if answered else None,
        "provider_id": provider,
        "upstream_model": upstream,
        "input_tokens": 0,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "usage_source": "none",
        "cost_nanousd": cost,
        "latency_ms": fact.latency_s * 1000,
        "outcome": fact.outcome,
        "status": fact.status,
    }
    without_usage = row.copy()
    if usage is not None:
        row["input_tokens"] = usage.input_tokens
        row["cached_input_tokens"] = usage.cached_input_tokens
        row["cache_write_tokens"] = usage.cache_creation_input_tokens
        row["output_tokens"] = usage.output_tokens
        row["reasoning_tokens"] = usage.reasoning_tokens
        row["usage_source"] = usage.source
    rows = [row]
    attempts = fact.trail.attempts if fact.trail is not None else ()
    for index, attempt in enumerate(attempts):
        carries = attempt is answered
        one = (row if carries else without_usage).copy()
        one["row_kind"] = "attempt"
        one["attempt_index"] = index
        one["model_id"] = attempt.model_id
        one["provider_id"] = attempt.provider_id
        one["upstream_model"] = attempt.upstream_model
        one["cost_nanousd"] = cost if carries else 0
        one["latency_ms"] = attempt.elapsed_s * 1000
        one["outcome"] = attempt.outcome
        one["status"] = None
        rows.append(one)
    return rows
