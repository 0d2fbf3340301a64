"""Anthropic answers -> neutral types: messages, usage, stop reasons, models and token counts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from palyra.model import (
    Capability,
    ChatResponse,
    FailureClass,
    FinishReason,
    ModelInfo,
    PalyraError,
    TokenCount,
    ToolCallPart,
    Usage,
)
from palyra.model.extensions import ANTHROPIC_MESSAGES, Extensions, unknown_fields

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop_sequence",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# A message's fields the contract models; the others (``container``, ``context_management``,
# ...) travel as the answer's extensions, back to an Anthropic client.
ANSWER_KEYS = frozenset(
    {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"}
)
# Each content block type's fields the contract models (a text block's ``citations`` only when
# null); a block of another type, or with another field, keeps the content as sent.
BLOCK_KEYS = {
    "text": frozenset({"type", "text", "citations"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
    "tool_use": frozenset({"type", "id", "name", "input", "caller"}),
}


def malformed(message: str, *, provider: str | None = None) -> PalyraError:
    where = provider or "anthropic"
    return PalyraError.of(FailureClass.MALFORMED_RESPONSE, f"{where}: {message}", provider=provider)


def finish_reason(stop_reason: object, *, has_tool_calls: bool) -> FinishReason:
    """The neutral finish reason; an unknown or missing one falls back on what the answer holds."""
    if isinstance(stop_reason, str) and stop_reason in STOP_REASONS:
        return STOP_REASONS[stop_reason]
    return "tool_calls" if has_tool_calls else "stop"


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and value >= 0 else 0


def usage_fields(usage: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`Usage`'s fields from an Anthropic usage object: the input of
    :func:`usage_from_anthropic`, or of a model holding a usage."""
    read = _count(usage, "cache_read_input_tokens")
    created = _count(usage, "cache_creation_input_tokens")
    fields: dict[str, Any] = {
        "input_tokens": _count(usage, "input_tokens") + read + created,
        "output_tokens": _count(usage, "output_tokens"),
        "cached_input_tokens": read,
        "cache_creation_input_tokens": created,
        "source": "provider",
    }
    split = usage.get("cache_creation")
    if isinstance(split, dict):  # the writes by cache lifetime
        fields["cache_creation_5m_input_tokens"] = _count(split, "ephemeral_5m_input_tokens")
        fields["cache_creation_1h_input_tokens"] = _count(split, "ephemeral_1h_input_tokens")
    return fields


# The usage fields the contract models (``service_tier`` included); ``server_tool_use`` and any
# other count travel as the usage's extensions, for an Anthropic client.
USAGE_KEYS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_creation",
        "service_tier",
    }
)


def usage_extensions(usage: Mapping[str, Any]) -> Extensions | None:
    """The usage fields the contract does not model (non-null ones: Anthropic sends
    ``server_tool_use: null`` and the like on every answer), as sent; None when there are none."""
    if usage.keys() <= USAGE_KEYS:
        return None
    extra = {k: v for k, v in usage.items() if k not in USAGE_KEYS and v is not None}
    return Extensions.model_construct(owner=ANTHROPIC_MESSAGES, fields=extra) if extra else None


def usage_from_anthropic(usage: Mapping[str, Any]) -> Usage:
    """Provider usage. Anthropic's ``input_tokens`` leaves out cache reads and writes; the
    neutral ``input_tokens`` counts all input (as OpenAI does), cached parts reported beside it."""
    return Usage(**usage_fields(usage))


def load_json_object(
    text: bytes | str, what: str, *, provider: str | None = None
) -> dict[str, Any]:
    """Parse an upstream body that must be a JSON object, or raise ``malformed_response``."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise malformed(f"{what} is not valid JSON ({exc})", provider=provider) from exc
    if not isinstance(data, dict):
        raise malformed(f"{what} is not a JSON object", provider=provider)
    return data


def parse_anthropic_message(
    body: dict[str, Any], *, provider: str | None = None, headers: Mapping[str, str] | None = None
) -> ChatResponse:
    """A ``Message`` object -> ``ChatResponse``: thinking and redacted thinking (signatures and
    data exactly as sent), text, tool calls, the stop sequence; blocks of other types (server
    tools) and block fields the contract does not model (``citations``) keep the content list
    as sent, for an Anthropic client (``content_blocks``)."""
    content = body.get("content")
    if not isinstance(body.get("id"), str) or not isinstance(content, list):
        raise malformed("the message has no 'id' or no 'content' list", provider=provider)
    texts: list[str] = []
    calls: list[ToolCallPart] = []
    reasoning: list[dict[str, Any]] = []
    kept = False  # whether the content holds what only its own list can carry
    for block in content:
        if not isinstance(block, dict):
            raise malformed("a content block is not an object", provider=provider)
        kind = block.get("type")
        if not kept:
            known = BLOCK_KEYS.get(kind) if isinstance(kind, str) else None
            kept = known is None or not block.keys() <= known or bool(block.get("citations"))
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking":
            reasoning.append(_thinking(block, provider))
        elif kind == "redacted_thinking":
            if not isinstance(block.get("data"), str):
                raise malformed("a redacted_thinking block has no 'data'", provider=provider)
            reasoning.append({"type": "redacted_thinking", "data": block["data"]})
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise malformed("a tool_use block has no 'id' or 'name'", provider=provider)
            tool_input = block.get("input")
            arguments = orjson.dumps(tool_input).decode() if tool_input is not None else "{}"
            calls.append(ToolCallPart(id=block["id"], name=block["name"], arguments=arguments))
    usage = body.get("usage")
    stop_sequence = body.get("stop_sequence")
    # One validation of the whole answer, usage nested: a Usage built on its own first would
    # be a second pass through pydantic's model machinery.
    fields: dict[str, Any] = {
        "id": body["id"],
        "model": str(body.get("model") or ""),
        "content": "".join(texts),
        "tool_calls": calls,
        "finish_reason": finish_reason(body.get("stop_reason"), has_tool_calls=bool(calls)),
        "usage": usage_fields(usage) if isinstance(usage, dict) else {"source": "estimated"},
        "provider": provider,
    }
    # Set only when present: most answers have neither, and an absent key validates for free.
    if reasoning:
        fields["reasoning"] = reasoning
    if isinstance(stop_sequence, str):
        fields["stop_sequence"] = stop_sequence
    tier = service_tier(usage)
    if tier is not None:
        fields["service_tier"] = tier
    if isinstance(usage, dict):
        kept_usage = usage_extensions(usage)
        if kept_usage is not None:
            fields["usage_extensions"] = kept_usage
    if headers:
        fields["headers"] = headers
    extensions = unknown_fields(body, ANSWER_KEYS, ANTHROPIC_MESSAGES)
    if extensions is not None:
        fields["extensions"] = extensions
    if kept:
        fields["content_blocks"] = Extensions(owner=ANTHROPIC_MESSAGES, fields={"content": content})
    return ChatResponse.model_validate(fields)


def _thinking(block: dict[str, Any], provider: str | None) -> dict[str, Any]:
    thinking, signature = block.get("thinking"), block.get("signature")
    if not isinstance(thinking, str):
        raise malformed("a thinking block has no 'thinking' text", provider=provider)
    return {
        "type": "thinking",
        "thinking": thinking,
        "signature": signature if isinstance(signature, str) else None,
    }


def service_tier(usage: object) -> str | None:
    """The tier in ``usage.service_tier``, in the neutral (OpenAI) words: ``standard`` is
    ``default``; ``priority`` and ``batch`` keep their names."""
    tier = usage.get("service_tier") if isinstance(usage, dict) else None
    if not isinstance(tier, str):
        return None
    return "default" if tier == "standard" else tier


def _created(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 1 else None


def _capabilities(entry: Mapping[str, Any]) -> frozenset[Capability]:
    caps: set[Capability] = {"chat", "tools", "json", "vision"}
    reported = entry.get("capabilities")
    if isinstance(reported, dict):
        image = reported.get("image_input")
        if isinstance(image, dict) and image.get("supported") is False:
            caps.discard("vision")
    return frozenset(caps)


def parse_anthropic_models(
    body: dict[str, Any], *, provider: str
) -> tuple[list[ModelInfo], str | None]:
    """One ``GET /v1/models`` page -> (models, the ``after_id`` for the next page or None)."""
    data = body.get("data")
    if not isinstance(data, list):
        raise malformed("the model list has no 'data' array", provider=provider)
    models: list[ModelInfo] = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise malformed("a model entry has no 'id'", provider=provider)
        display = entry.get("display_name")
        models.append(
            ModelInfo(
                id=entry["id"],
                provider=provider,
                owned_by="anthropic",
                created=_created(entry.get("created_at")),
                context_window=_positive(entry.get("max_input_tokens")),
                max_output_tokens=_positive(entry.get("max_tokens")),
                capabilities=_capabilities(entry),
                display_name=display if isinstance(display, str) else None,
            )
        )
    last = body.get("last_id")
    next_after = last if body.get("has_more") is True and isinstance(last, str) else None
    return models, next_after


def parse_anthropic_token_count(body: dict[str, Any], *, provider: str | None = None) -> TokenCount:
    """``/v1/messages/count_tokens`` -> an exact (not estimated) count."""
    tokens = body.get("input_tokens")
    if not isinstance(tokens, int) or tokens < 0:
        raise malformed("the token count has no 'input_tokens' integer", provider=provider)
    return TokenCount(input_tokens=tokens, estimated=False)
