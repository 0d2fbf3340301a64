"""Reasoning on the Responses surface: the ``reasoning`` parameter and ``reasoning`` items.

A neutral thinking part is a ``reasoning`` item whose ``summary`` holds the thinking text and
whose ``encrypted_content`` holds the signature (Anthropic's, or OpenAI's own encrypted
reasoning), so a client that sends the item back (or chains with ``previous_response_id``)
gives the upstream its reasoning byte for byte. Redacted thinking is an item with no summary,
its opaque data in ``encrypted_content`` and an id ending in ``_redacted``, which is how it is
told apart when it comes back.
"""

from __future__ import annotations

from typing import Any

from palyra.daemon.surfaces.wire_checks import invalid, obj, string
from palyra.model import ReasoningConfig, ReasoningPart, RedactedThinkingPart, ThinkingPart

REDACTED_SUFFIX = "_redacted"
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
SUMMARIES = ("auto", "concise", "detailed")


def reasoning_config(raw: Any) -> tuple[dict[str, Any], ReasoningConfig | None]:
    """``reasoning`` as echoed back and as the neutral config: ``effort`` maps to the effort
    level (``none`` turns reasoning off), a ``summary`` asks for summarized thinking text."""
    if raw is None:
        return {"effort": None, "summary": None}, None
    reasoning = obj(raw, "reasoning")
    effort = reasoning.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise invalid(
            f"reasoning.effort is {effort!r}; use one of {', '.join(EFFORTS)}", "reasoning.effort"
        )
    summary = reasoning.get("summary", reasoning.get("generate_summary"))
    if summary is not None and summary not in SUMMARIES:
        raise invalid(
            f"reasoning.summary is {summary!r}; use one of {', '.join(SUMMARIES)}",
            "reasoning.summary",
        )
    echo = {"effort": effort, "summary": summary}
    if effort is None and summary is None:
        return echo, None
    if effort == "none":
        return echo, ReasoningConfig(enabled=False)
    return echo, ReasoningConfig(
        effort=effort, display="summarized" if summary is not None else None
    )


def reasoning_part(item: dict[str, Any], where: str) -> ReasoningPart:
    """A ``reasoning`` input item as the neutral part it came from."""
    encrypted = item.get("encrypted_content")
    if encrypted is not None:
        encrypted = string(encrypted, f"{where}.encrypted_content")
    item_id = item.get("id")
    if isinstance(item_id, str) and item_id.endswith(REDACTED_SUFFIX) and encrypted:
        return RedactedThinkingPart(data=encrypted)
    summary = item.get("summary") or []
    if not isinstance(summary, list):
        raise invalid(f"{where}.summary must be an array of summary_text parts", where)
    texts = [
        string(obj(p, f"{where}.summary[{j}]").get("text"), f"{where}.summary[{j}].text")
        for j, p in enumerate(summary)
    ]
    return ThinkingPart(thinking="\n\n".join(texts), signature=encrypted)


def reasoning_item(item_id: str, part: ReasoningPart, status: str = "completed") -> dict[str, Any]:
    """The output item of a neutral reasoning part (``item_id`` gets the redacted suffix)."""
    if isinstance(part, RedactedThinkingPart):
        return {
            "id": item_id + REDACTED_SUFFIX,
            "type": "reasoning",
            "summary": [],
            "encrypted_content": part.data,
            "status": status,
        }
    summary = [{"type": "summary_text", "text": part.thinking}] if part.thinking else []
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": summary if status == "completed" else [],
        "encrypted_content": part.signature,
        "status": status,
    }
