"""``GET /v1/responses/{id}/input_items``: the items a stored response was made from (pure).

A response's input items are kept as the client sent them, each given the ``id`` (and
``status``) OpenAI's item resources carry when the client sent none, when the response is
stored (:func:`input_resources`). The list of a chained response holds every item the answer
was made from, oldest first: each earlier turn's input and output, then its own input, as
OpenAI's does (``instructions`` are not items). :func:`page` cuts it by ``limit``, ``order`` and
``after`` into OpenAI's list shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palyra.daemon.surfaces.wire_checks import invalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# OpenAI's IncludeEnum: asks for parts of items that Palyra keeps whole anyway.
INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
_WITH_STATUS = frozenset({"message", "function_call", "function_call_output"})


def _content(role: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    return [{"type": "output_text" if role == "assistant" else "input_text", "text": raw}]


def input_resources(raw: Any, id_base: str) -> list[dict[str, Any]]:
    """The request's ``input`` (already validated) as item resources, ids made from
    ``id_base`` and the position where the client gave none; everything else as sent."""
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        return []
    items: list[dict[str, Any]] = []
    for position, sent in enumerate(raw):
        item = dict(sent)
        kind = str(item.setdefault("type", "message"))
        if kind == "message":
            item["content"] = _content(str(item.get("role")), item.get("content"))
        if not item.get("id"):
            item["id"] = f"{_PREFIXES.get(kind, 'item')}_{id_base}_in{position}"
        if kind in _WITH_STATUS and item.get("status") is None:
            item["status"] = "completed"
        items.append(item)
    return items


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid(f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}", "limit")
    return int(raw)


def check_include(values: list[str]) -> None:
    for value in values:
        if value not in INCLUDABLE:
            raise invalid(
                f"include: {value!r} is not one of {', '.join(sorted(INCLUDABLE))}", "include"
            )


def page(
    items: list[dict[str, Any]], query: Mapping[str, str], include: list[str]
) -> dict[str, Any]:
    """One page of ``items`` (oldest first) for the query's ``limit`` / ``order`` / ``after``."""
    check_include(include)
    limit = _limit(query.get("limit"))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid(f"order must be 'asc' or 'desc', got {order!r}", "order")
    ordered = items if order == "asc" else items[::-1]
    start = 0
    after = query.get("after")
    if after is not None:
        ids = [str(item.get("id")) for item in ordered]
        if after not in ids:
            raise invalid(
                f"after: {after!r} is not the id of an input item of this response", "after"
            )
        start = ids.index(after) + 1
    data = ordered[start : start + limit]
    return {
        "object": "list",
        "data": data,
        "has_more": start + len(data) < len(ordered),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
