"""Anthropic's ``output_config`` (effort and structured output) on the Messages surface (pure).

The object travels as the client sent it to an Anthropic upstream (an extension of the Anthropic
format, marked mapped), and its meaning is also read into the contract so a model of another API
serves it: ``effort`` as the reasoning effort level (``reasoning_effort`` on OpenAI),
``format: {"type": "json_schema", "schema": ...}`` as a JSON-schema response format
(``response_format`` / ``text.format``). Keys beyond those two (a beta's ``task_budget``) have no
counterpart elsewhere: then the whole object stays unmapped, and another API refuses it with a
400 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from palyra.daemon.surfaces.wire_checks import invalid, obj
from palyra.model import ReasoningEffort, ResponseFormat

EFFORTS = ("low", "medium", "high", "xhigh", "max")
MAPPED_KEYS = frozenset({"effort", "format"})


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """What an ``output_config`` means in the contract's words."""

    effort: ReasoningEffort | None
    response_format: ResponseFormat | None
    mapped: bool
    """Every key has a counterpart in the contract (another API may serve the request)."""


def read_output_config(raw: Any) -> OutputConfig:
    config = obj(raw, "output_config")
    effort = config.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise invalid(
            f"output_config.effort is {effort!r}; use one of {', '.join(EFFORTS)}",
            "output_config.effort",
        )
    fmt = config.get("format")
    response_format = None
    if fmt is not None:
        fmt = obj(fmt, "output_config.format")
        if fmt.get("type") != "json_schema":
            raise invalid(
                f"output_config.format.type is {fmt.get('type')!r}; use 'json_schema'",
                "output_config.format.type",
            )
        schema = obj(fmt.get("schema"), "output_config.format.schema")
        response_format = ResponseFormat(type="json_schema", json_schema=schema)
    return OutputConfig(
        effort=cast("ReasoningEffort | None", effort),
        response_format=response_format,
        mapped=config.keys() <= MAPPED_KEYS,
    )
