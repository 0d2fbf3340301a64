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
    Extensions,
    ReasoningConfig,
    ReasoningPart,
    RedactedThinkingPart,
    ThinkingPart,
)
from palyra.model.extensions import ANTHROPIC_MESSAGES, unknown_fields

_TTLS = ("5m", "1h")
_MARKER_KEYS = frozenset({"type", "ttl"})
# Each block type's fields the contract models; any other travels in the part's extensions.
TEXT_KEYS = frozenset({"type", "text", "cache_control"})
IMAGE_KEYS = frozenset({"type", "source", "cache_control"})
DOCUMENT_KEYS = frozenset({"type", "source", "title", "context", "citations", "cache_control"})
TOOL_USE_KEYS = frozenset({"type", "id", "name", "input", "cache_control"})
TOOL_RESULT_KEYS = frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"})
THINKING_KEYS = frozenset({"type", "thinking", "signature"})
REDACTED_THINKING_KEYS = frozenset({"type", "data"})
# Parsed once: most marked blocks carry one of these two markers.
_EPHEMERAL = CacheControl()
_DISPLAYS = ("summarized", "omitted")


def cache_control(raw: Any, where: str) -> CacheControl | None:
    """A block's ``cache_control`` when it is a marker the contract models (``ephemeral``, with
    an optional ``ttl`` of ``5m`` or ``1h``); None when there is none, or when it is a variant
    the contract does not model (:func:`block_extensions` then carries it as sent, for an
    Anthropic upstream to judge). Anything but an object is a 400."""
    if raw is None:
        return None
    marker = obj(raw, f"{where}.cache_control")
    if marker.get("type") != "ephemeral":
        return None
    ttl = marker.get("ttl")
    if ttl is None and len(marker) == 1:
        return _EPHEMERAL
    if marker.keys() <= _MARKER_KEYS and ttl in _TTLS:
        return CacheControl(ttl=ttl)
    return None


def block_extensions(
    block: dict[str, Any], known: frozenset[str], marker: CacheControl | None
) -> Extensions | None:
    """The block's fields the contract does not model, for an Anthropic upstream: those outside
    ``known``, and its ``cache_control`` when that is a variant ``marker`` could not hold."""
    extensions = unknown_fields(block, known, ANTHROPIC_MESSAGES)
    raw = block.get("cache_control")
    if raw is None or marker is not None:
        return extensions
    fields = {} if extensions is None else dict(extensions.fields)
    fields["cache_control"] = raw
    return Extensions(owner=ANTHROPIC_MESSAGES, fields=fields)


def marked(block: dict[str, Any], known: frozenset[str], where: str) -> dict[str, Any]:
    """``cache_control`` and ``extensions`` of a block, as keyword arguments of its part (empty
    for a block holding only fields the contract models and no marker: the usual block)."""
    raw = block.get("cache_control")
    if raw is None and block.keys() <= known:
        return {}
    marker = cache_control(raw, where)
    extra: dict[str, Any] = {}
    if marker is not None:
        extra["cache_control"] = marker
    extensions = block_extensions(block, known, marker)
    if extensions is not None:
        extra["extensions"] = extensions
    return extra


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
        **marked(block, DOCUMENT_KEYS, where),
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
        extensions = unknown_fields(block, REDACTED_THINKING_KEYS, ANTHROPIC_MESSAGES)
        return RedactedThinkingPart(
            data=string(block.get("data"), f"{where}.data"), extensions=extensions
        )
    raw = block.get("signature")
    # An empty signature is what Palyra renders for unsigned reasoning: still unsigned.
    signature = None if raw is None else string(raw, f"{where}.signature") or None
    return ThinkingPart(
        thinking=string(block.get("thinking"), f"{where}.thinking"),
        signature=signature,
        extensions=unknown_fields(block, THINKING_KEYS, ANTHROPIC_MESSAGES),
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
