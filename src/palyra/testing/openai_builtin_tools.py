"""What the fake's ``/v1/responses`` answers for OpenAI's built-in tools (pure).

Each built-in tool the request offers runs once, in the order offered, before the answer, on the
last user text (the *query*): its output item (id ``<prefix>_<response id>``) and, streamed, the
item's own events between ``output_item.added`` and ``output_item.done`` as OpenAI sends them.

* ``web_search`` (and its dated and preview names): a ``web_search_call`` searching the query;
  the answer's text then cites ``https://search.example/?q=<query>`` (a ``url_citation``).
* ``file_search``: a ``file_search_call`` with the query in ``queries``.
* ``code_interpreter``: a ``code_interpreter_call`` whose code is ``print(len(<query>))``.
* ``image_generation``: an ``image_generation_call`` whose result is a 1x1 PNG (base64).
* ``mcp``: an ``mcp_list_tools`` item for the server (one ``echo`` tool), then an ``mcp_call``
  of ``echo`` with the query, output the query.
* ``computer_use_preview`` / ``computer``: a ``computer_call`` (a screenshot action) and no
  message: the turn waits for its ``computer_call_output``, which a later request must answer
  with the same ``call_id``.
* with ``FakeSettings.responses_future_item``: a ``future_widget_call`` item and a
  ``response.future_widget_call.spinning`` event, kinds no client knows yet, as a newer API
  version would send; and a top-level ``future_field`` on the Response object.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

WEB_SEARCH = frozenset(
    {"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"}
)
COMPUTER = frozenset({"computer_use_preview", "computer"})
# A 1x1 transparent PNG.
PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
FUTURE_ITEM = "future_widget_call"
FUTURE_EVENT = "response.future_widget_call.spinning"


def citation_url(query: str) -> str:
    return "https://search.example/?q=" + quote(query)


def tool_items(tools: list[dict[str, Any]], query: str, id: str) -> list[dict[str, Any]]:
    """The finished items of the built-in tools offered, in order."""
    items: list[dict[str, Any]] = []
    for tool in tools:
        kind = tool.get("type")
        if kind in WEB_SEARCH:
            items.append(
                {
                    "id": f"ws_{id}",
                    "type": "web_search_call",
                    "status": "completed",
                    "action": {"type": "search", "query": query},
                }
            )
        elif kind == "file_search":
            items.append(
                {
                    "id": f"fs_{id}",
                    "type": "file_search_call",
                    "status": "completed",
                    "queries": [query],
                    "results": None,
                }
            )
        elif kind == "code_interpreter":
            items.append(
                {
                    "id": f"ci_{id}",
                    "type": "code_interpreter_call",
                    "status": "completed",
                    "container_id": f"cntr_{id}",
                    "code": f"print(len({query!r}))",
                    "outputs": None,
                }
            )
        elif kind == "image_generation":
            items.append(
                {
                    "id": f"ig_{id}",
                    "type": "image_generation_call",
                    "status": "completed",
                    "result": PIXEL_PNG,
                }
            )
        elif kind == "mcp":
            label = str(tool.get("server_label") or "server")
            schema = {"type": "object", "properties": {"text": {"type": "string"}}}
            items.append(
                {
                    "id": f"mcpl_{id}",
                    "type": "mcp_list_tools",
                    "server_label": label,
                    "tools": [{"name": "echo", "input_schema": schema}],
                    "error": None,
                }
            )
            items.append(
                {
                    "id": f"mcp_{id}",
                    "type": "mcp_call",
                    "server_label": label,
                    "name": "echo",
                    "arguments": orjson.dumps({"text": query}).decode(),
                    "output": query,
                    "error": None,
                    "status": "completed",
                }
            )
        elif kind in COMPUTER:
            items.append(
                {
                    "id": f"cu_{id}",
                    "type": "computer_call",
                    "call_id": f"call_cu_{id}",
                    "action": {"type": "screenshot"},
                    "pending_safety_checks": [],
                    "status": "completed",
                }
            )
    return items


def future_item(id: str) -> dict[str, Any]:
    return {"id": f"fw_{id}", "type": FUTURE_ITEM, "status": "completed", "widget": "spun"}


def waits_for_output(items: list[dict[str, Any]]) -> bool:
    """A computer call ends the turn: the model waits for the screenshot."""
    return any(item["type"] == "computer_call" for item in items)


def item_events(item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events (type, fields besides item_id / output_index) between the item's
    ``output_item.added`` and ``output_item.done``."""
    kind = item["type"]
    if kind == "web_search_call":
        steps = ("in_progress", "searching", "completed")
        return [(f"response.web_search_call.{s}", {}) for s in steps]
    if kind == "file_search_call":
        steps = ("in_progress", "searching", "completed")
        return [(f"response.file_search_call.{s}", {}) for s in steps]
    if kind == "code_interpreter_call":
        code = item["code"]
        return [
            ("response.code_interpreter_call.in_progress", {}),
            ("response.code_interpreter_call_code.delta", {"delta": code}),
            ("response.code_interpreter_call_code.done", {"code": code}),
            ("response.code_interpreter_call.interpreting", {}),
            ("response.code_interpreter_call.completed", {}),
        ]
    if kind == "image_generation_call":
        partial = {"partial_image_index": 0, "partial_image_b64": item["result"]}
        return [
            ("response.image_generation_call.in_progress", {}),
            ("response.image_generation_call.generating", {}),
            ("response.image_generation_call.partial_image", partial),
            ("response.image_generation_call.completed", {}),
        ]
    if kind == "mcp_list_tools":
        return [
            ("response.mcp_list_tools.in_progress", {}),
            ("response.mcp_list_tools.completed", {}),
        ]
    if kind == "mcp_call":
        arguments = item["arguments"]
        return [
            ("response.mcp_call.in_progress", {}),
            ("response.mcp_call_arguments.delta", {"delta": arguments}),
            ("response.mcp_call_arguments.done", {"arguments": arguments}),
            ("response.mcp_call.completed", {}),
        ]
    if kind == FUTURE_ITEM:
        return [(FUTURE_EVENT, {"spin": 1})]
    return []


def in_progress(item: dict[str, Any]) -> dict[str, Any]:
    """The item as ``output_item.added`` announces it."""
    if "status" not in item:
        return item
    return {**item, "status": "in_progress"}
