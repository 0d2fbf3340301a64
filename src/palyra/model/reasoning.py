"""How a reasoning effort level and a thinking token budget stand for each other.

OpenAI takes a level (``reasoning_effort``), Anthropic a budget (``thinking.budget_tokens``).
A model may set its own table in ``palyra.toml`` (``reasoning_budgets``); these are the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping

from palyra.model.requests import ReasoningEffort

DEFAULT_EFFORT_BUDGETS: Mapping[ReasoningEffort, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 65536,
}
"""Thinking budget per effort level, for requests that name a level and no budget."""

# The levels OpenAI's ``reasoning_effort`` takes; Anthropic's ``max`` is sent as ``xhigh``.
OPENAI_EFFORTS: tuple[ReasoningEffort, ...] = ("none", "minimal", "low", "medium", "high", "xhigh")


def effort_budgets(overrides: Mapping[ReasoningEffort, int] | None) -> dict[ReasoningEffort, int]:
    """The defaults with a model's own budgets over them."""
    return {**DEFAULT_EFFORT_BUDGETS, **(overrides or {})}


def effort_for_budget(
    budget: int, budgets: Mapping[ReasoningEffort, int] = DEFAULT_EFFORT_BUDGETS
) -> ReasoningEffort:
    """The lowest OpenAI level whose budget covers ``budget`` (the highest level when none does):
    a client that allowed that many thinking tokens gets at least that much reasoning."""
    levels = sorted((tokens, level) for level, tokens in budgets.items() if level in OPENAI_EFFORTS)
    for tokens, level in levels:
        if tokens >= budget:
            return level
    return levels[-1][1] if levels else "high"
