"""Configured models as OpenAI and Anthropic model objects and list pages (pure).

Anthropic's list is paged by model id (``limit``, ``after_id``, ``before_id``), in config order,
as its SDK's auto-pagination expects: ``has_more`` and ``first_id``/``last_id`` of the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from palyra.config.schema import ModelConfig
from palyra.daemon.surfaces.wire_checks import invalid

DEFAULT_PAGE = 20
MAX_PAGE = 1000


def openai_model(model: ModelConfig, created: int) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": created, "owned_by": model.provider}


def openai_list(models: Sequence[ModelConfig], created: int) -> dict[str, Any]:
    return {"object": "list", "data": [openai_model(m, created) for m in models]}


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def anthropic_model(model: ModelConfig, created: int) -> dict[str, Any]:
    """Anthropic's model object; ``capabilities`` is null (Palyra's capability names are not
    Anthropic's), the token limits are the configured ones (null when not configured)."""
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.id,
        "created_at": rfc3339(created),
        "capabilities": None,
        "max_input_tokens": model.context_window,
        "max_tokens": model.max_output_tokens,
        "lifecycle": "active",
    }


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise invalid(f"limit must be an integer from 1 to {MAX_PAGE}, got {raw!r}", "limit")
    return int(raw)


def _position(ids: list[str], wanted: str, param: str) -> int:
    if wanted not in ids:
        raise invalid(
            f"{param} {wanted!r} is not a configured model id (known: {', '.join(ids)})", param
        )
    return ids.index(wanted)


def anthropic_page(
    models: Sequence[ModelConfig], created: int, query: Mapping[str, str]
) -> dict[str, Any]:
    """One page of Anthropic's model list for the query's ``limit``/``after_id``/``before_id``."""
    limit = _limit(query.get("limit"))
    ids = [m.id for m in models]
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise invalid("send after_id or before_id, not both", "before_id")
    start, stop = 0, len(models)
    if after is not None:
        start = _position(ids, after, "after_id") + 1
    if before is not None:
        stop = _position(ids, before, "before_id")
        start = max(0, stop - limit)
    page = list(models[start:stop][:limit])
    more = (start + len(page) < len(models)) if before is None else start > 0
    return {
        "data": [anthropic_model(m, created) for m in page],
        "has_more": more,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
    }
