"""Anthropic's ``output_config`` in a Messages payload: effort and structured output (pure).

An Anthropic client's own ``output_config`` travels as it sent it (the request's extensions);
then its effort is not turned into a thinking budget and its format not into an instruction.
For any other client, what a model takes is set per model in ``palyra.toml``
(:class:`OutputOptions`): ``output_effort`` sends a reasoning effort level as
``output_config.effort`` instead of a thinking budget, ``structured_outputs`` sends a JSON-schema
response format as ``output_config.format`` instead of a system instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palyra.model import ChatRequest, ReasoningEffort
from palyra.model.extensions import ANTHROPIC_MESSAGES

# OpenAI's levels as Anthropic's effort levels (low, medium, high, xhigh, max).
ANTHROPIC_EFFORTS: dict[ReasoningEffort, str] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """What one model takes of ``output_config`` (its ``[[model_provider.models]]`` entry)."""

    effort: bool = False
    structured: bool = False


NO_OPTIONS = OutputOptions()


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How the request's effort and response format reach the upstream."""

    config: dict[str, Any] | None
    """The ``output_config`` Palyra writes (None: none, or the client's own goes as sent)."""
    effort_as_output: bool
    """The effort level is ``output_config.effort``: no thinking budget is made from it."""
    format_as_output: bool
    """The response format is ``output_config.format``: no instruction stands in for it."""


def plan_output(request: ChatRequest, options: OutputOptions) -> OutputPlan:
    extensions = request.extensions
    own = (
        extensions.fields.get("output_config")
        if extensions is not None and extensions.owner == ANTHROPIC_MESSAGES
        else None
    )
    if isinstance(own, dict):  # the Anthropic client's own, written back with its extensions
        return OutputPlan(None, "effort" in own, "format" in own)
    reasoning, fmt = request.reasoning, request.response_format
    config: dict[str, Any] = {}
    if options.effort and reasoning is not None and reasoning.enabled:
        level = ANTHROPIC_EFFORTS.get(reasoning.effort) if reasoning.effort else None
        if level is not None:
            config["effort"] = level
    if options.structured and fmt is not None and fmt.type == "json_schema":
        config["format"] = {"type": "json_schema", "schema": fmt.json_schema}
    return OutputPlan(config or None, "effort" in config, "format" in config)
