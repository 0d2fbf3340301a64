"""What the hot path hands the ledger for one finished request, and the rows made from it.

A request hands over a :class:`UsageFact` (one tuple, no arithmetic); pricing and row building
happen in the ledger's writer, off the request's path (see :mod:`palyra.usage.ledger`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
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


def day_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


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
            on=datetime.fromtimestamp(fact.at, UTC).date(),
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
    base = {
        "at_ms": int(fact.at * 1000),
        "day": day_of(fact.at),
        "request_id": fact.request_id,
        "token_id": fact.token_id,
        "agent_id": fact.agent_id,
        "run_id": fact.run_id,
        "requested_model": fact.requested_model,
    }
    request_row = {
        **base,
        "row_kind": "request",
        "attempt_index": None,
        "model_id": answered.model_id if answered else None,
        "provider_id": provider,
        "upstream_model": upstream,
        **_tokens(usage),
        "cost_nanousd": cost,
        "latency_ms": fact.latency_s * 1000,
        "outcome": fact.outcome,
        "status": fact.status,
    }
    rows = [request_row]
    attempts = fact.trail.attempts if fact.trail is not None else []
    for index, attempt in enumerate(attempts):
        carries = attempt is answered
        rows.append(
            {
                **base,
                "row_kind": "attempt",
                "attempt_index": index,
                "model_id": attempt.model_id,
                "provider_id": attempt.provider_id,
                "upstream_model": attempt.upstream_model,
                **_tokens(usage if carries else None),
                "cost_nanousd": cost if carries else 0,
                "latency_ms": attempt.elapsed_s * 1000,
                "outcome": attempt.outcome,
                "status": None,
            }
        )
    return rows


def _tokens(usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        return {
            "input_tokens": 0,
            "cached_input_tokens": 0,
            "cache_write_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
            "usage_source": "none",
        }
    return {
        "input_tokens": usage.input_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_creation_input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_source": usage.source,
    }
