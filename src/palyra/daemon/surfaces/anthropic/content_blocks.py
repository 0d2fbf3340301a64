"""Anthropic's richer content at our edge: cache markers, documents, thinking (pure).

Parsed from a request into neutral parts, and rendered from neutral reasoning back into the
``thinking`` / ``redacted_thinking`` blocks of a message, so the ``messages_format`` parser and
encoder stay about turns and events.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from palyra.daemon.surfaces.wire_checks import invalid, obj, string
from palyra.model import (
    CacheControl,
    DocumentPart,
    ReasoningConfig,
    ReasoningPart,
    RedactedThinkingPart,
    ThinkingPart,
)

_TTLS = ("5m", "1h")
# Parsed once: most marked blocks carry one of these two markers.
_EPHEMERAL = CacheControl()
_DISPLAYS = ("summarized", "omitted")


def cache_control(raw: Any, where: str) -> CacheControl | None:
    """A block's ``cache_control`` (``{"type": "ephemeral", "ttl"?: "5m" | "1h"}``) or None."""
    if raw is None:
        return None
    marker = obj(raw, f"{where}.cache_control")
    if marker.get("type") != "ephemeral":
        raise invalid(
            f"{where}.cache_control.type is {marker.get('type')!r}; use 'ephemeral'",
            f"{where}.cache_control",
        )
    ttl = marker.get("ttl")
    if ttl is None and len(marker) == 1:
        return _EPHEMERAL
    if ttl is not None and ttl not in _TTLS:
        raise invalid(
            f"{where}.cache_control.ttl is {ttl!r}; use '5m' or '1h'", f"{where}.cache_control"
        )
    extra = sorted(set(marker) - {"type", "ttl"})
    if extra:
        raise invalid(
            f"{where}.cache_control has unknown field(s) {', '.join(extra)}; "
            "it takes 'type' and 'ttl'",
            f"{where}.cache_control",
        )
    return CacheControl(ttl=ttl)


def _citations(raw: Any, where: str) -> bool | None:
    if raw is None:
        return None
    enabled = obj(raw, f"{where}.citations").get("enabled")
    if not isinstance(enabled, bool):
        raise invalid(f"{where}.citations.enabled must be true or false", f"{where}.citations")
    return enabled


def _optional_string(block: dict[str, Any], key: str, where: str) -> str | None:
    value = block.get(key)
    return None if value is None else string(value, f"{where}.{key}")


def document(block: dict[str, Any], where: str) -> DocumentPart:
    """A ``document`` block: a base64 PDF, a URL, plain text or an uploaded file."""
    source = obj(block.get("source"), f"{where}.source")
    kind = source.get("type")
    fields: dict[str, Any] = {
        "title": _optional_string(block, "title", where),
        "context": _optional_string(block, "context", where),
        "citations": _citations(block.get("citations"), where),
        "cache_control": cache_control(block.get("cache_control"), where),
    }
    at = f"{where}.source"
    if kind == "base64":
        fields["data"] = string(source.get("data"), f"{at}.data")
        fields["media_type"] = string(source.get("media_type"), f"{at}.media_type")
    elif kind == "url":
        fields["url"] = string(source.get("url"), f"{at}.url")
    elif kind == "text":
        fields["text"] = string(source.get("data"), f"{at}.data")
    elif kind == "file":
        fields["file_id"] = string(source.get("file_id"), f"{at}.file_id")
    else:
        raise invalid(
            f"{at}.type is {kind!r}; Palyra carries 'base64' (PDF), 'url', 'text' and 'file' "
            "document sources",
            at,
        )
    try:
        return DocumentPart(**fields)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise invalid(f"{where}: {message}", where) from exc


def thinking_block(block: dict[str, Any], where: str) -> ReasoningPart:
    """A ``thinking`` or ``redacted_thinking`` block of assistant history, kept exactly."""
    if block.get("type") == "redacted_thinking":
        return RedactedThinkingPart(data=string(block.get("data"), f"{where}.data"))
    raw = block.get("signature")
    # An empty signature is what Palyra renders for unsigned reasoning: still unsigned.
    signature = None if raw is None else string(raw, f"{where}.signature") or None
    return ThinkingPart(
        thinking=string(block.get("thinking"), f"{where}.thinking"), signature=signature
    )


def thinking_config(raw: Any) -> ReasoningConfig | None:
    """The ``thinking`` parameter: enabled with a budget, disabled, or adaptive."""
    if raw is None:
        return None
    config = obj(raw, "thinking")
    kind = config.get("type")
    display = config.get("display")
    if display is not None and display not in _DISPLAYS:
        raise invalid(f"thinking.display is {display!r}; use 'summarized' or 'omitted'", "thinking")
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise invalid(
                "thinking.budget_tokens must be a positive integer (Anthropic asks for at "
                "least 1024, below max_tokens)",
                "thinking.budget_tokens",
            )
        return ReasoningConfig(budget_tokens=budget, display=display)
    if kind == "disabled":
        return ReasoningConfig(enabled=False)
    if kind == "adaptive":
        return ReasoningConfig(adaptive=True, display=display)
    raise invalid(f"thinking.type is {kind!r}; use 'enabled', 'disabled' or 'adaptive'", "thinking")


def reasoning_json(part: ReasoningPart) -> dict[str, Any]:
    """A reasoning part as the block Anthropic returns; unsigned reasoning (from an
    OpenAI-compatible model) gets an empty signature, which Palyra reads back as unsigned."""
    if isinstance(part, RedactedThinkingPart):
        return {"type": "redacted_thinking", "data": part.data}
    return {"type": "thinking", "thinking": part.thinking, "signature": part.signature or ""}
