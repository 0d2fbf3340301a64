"""Anthropic ``/v1/messages`` and ``count_tokens``: request validation and response/event shapes (pure).

Thinking, as Anthropic does it: with ``thinking`` on, a reply starts with a ``thinking`` block
whose ``signature`` is an HMAC of its text (:func:`sign_thinking`). History is checked the way
Anthropic checks it: a thinking block whose signature does not match its text is refused, and with
thinking on, the assistant turn holding the last tool calls must start with its thinking block.
Cache markers: the request prefix up to the last ``cache_control`` is written to the cache the
first time the fake sees it and read from it afterwards (:func:`cache_prefix`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any, NoReturn

import orjson

from palyra.testing.conversation import (
    Conversation,
    Reply,
    ToolDef,
    ToolResult,
    count_words,
    split_words,
)
from palyra.testing.wire_errors import invalid

BLOCK_TYPES = {
    "user": ("text", "image", "document", "tool_result", "search_result"),
    "assistant": (
        "text",
        "tool_use",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
    ),
}
WEB_SEARCH_URL = "https://example.com/palyra"
WEB_SEARCH_TITLE = "Palyra, a model gateway"
TOOL_CHOICES = ("auto", "any", "tool", "none")
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
}
TOOL_INPUT_FRAGMENT_CHARS = 10
DOCUMENT_SOURCES = ("base64", "url", "text", "content", "file")
MIN_THINKING_BUDGET = 1024
_SIGNING_KEY = b"palyra-fake-upstream-thinking"


def sign_thinking(text: str) -> str:
    """The signature the fake gives a thinking block: it checks it when the block comes back."""
    digest = hmac.new(_SIGNING_KEY, text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _required(name: str) -> NoReturn:
    raise invalid(f"{name}: Field required")


def _system_tokens(system: Any) -> int:
    if system is None:
        return 0
    if isinstance(system, str):
        return count_words(system)
    if isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        return sum(count_words(b["text"]) for b in system)
    raise invalid("system: Input should be a valid string or a list of text blocks")


def _result_text(content: Any, where: str) -> tuple[str, int]:
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise invalid(f"{where}: Input should be a valid string or a list of content blocks")
    texts = [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return " ".join(texts), len(content) - len(texts)


def _blocks(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = msg.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(
            f"{where}.content: Input should be a valid string or a list of content blocks"
        )
    allowed = BLOCK_TYPES[msg["role"]]
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in allowed:
            raise invalid(
                f"{where}.content.{j}.type: Input tag '{kind}' is not allowed in a "
                f"{msg['role']} message (expected one of: {', '.join(allowed)})"
            )
        if kind == "text" and not isinstance(block.get("text"), str):
            _required(f"{where}.content.{j}.text")
        if kind == "tool_use" and not (
            isinstance(block.get("id"), str)
            and isinstance(block.get("name"), str)
            and isinstance(block.get("input"), dict)
        ):
            raise invalid(
                f"{where}.content.{j}: tool_use blocks need string id and name and an object input"
            )
        if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            _required(f"{where}.content.{j}.tool_use_id")
        if kind == "thinking" and not (
            isinstance(block.get("thinking"), str)
            and block.get("signature") == sign_thinking(block["thinking"])
        ):
            raise invalid(f"{where}.content.{j}: Invalid `signature` in `thinking` block")
        if kind == "document":
            source = block.get("source")
            if not isinstance(source, dict) or source.get("type") not in DOCUMENT_SOURCES:
                raise invalid(
                    f"{where}.content.{j}.source.type: Input tag is not one of: "
                    + ", ".join(DOCUMENT_SOURCES)
                )
    return content


def _check_thinking_first(messages: list[Any]) -> None:
    """With thinking on, the assistant turn of the last tool calls starts with its thinking."""
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        blocks = msg.get("content")
        if msg.get("role") != "assistant" or not isinstance(blocks, list) or not blocks:
            continue
        if not any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks):
            return
        first = blocks[0].get("type") if isinstance(blocks[0], dict) else None
        if first not in ("thinking", "redacted_thinking"):
            raise invalid(
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                f"found `{first}`. When `thinking` is enabled, a final `assistant` message must "
                "start with a thinking block."
            )
        return


def _thinking(body: dict[str, Any], max_tokens: Any) -> bool:
    config = body.get("thinking")
    if config is None:
        return False
    kind = config.get("type") if isinstance(config, dict) else None
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
            raise invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if isinstance(max_tokens, int) and budget >= max_tokens:
            raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
        return True
    if kind in ("disabled", "adaptive"):
        return bool(kind == "adaptive")
    raise invalid(f"thinking.type: Input tag '{kind}' is not one of: enabled, disabled, adaptive")


def cache_prefix(body: dict[str, Any]) -> tuple[bytes, int, int] | None:
    """(a key for the prompt up to its last cache marker, that prefix's tokens, the tokens up
    to its last one-hour marker), or None when nothing is marked. Order as Anthropic caches:
    tools, system, then messages (one-hour markers come before five-minute ones)."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, list):
        blocks += system
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        blocks += content if isinstance(content, list) else []
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    if not marked:
        return None
    prefix = blocks[: marked[-1] + 1]
    tokens = [count_words(orjson.dumps(b).decode()) for b in prefix]
    hour = [i for i in marked if blocks[i]["cache_control"].get("ttl") == "1h"]
    long_lived = sum(tokens[: hour[-1] + 1]) if hour else 0
    return hashlib.sha256(orjson.dumps(prefix)).digest(), sum(tokens), long_lived


def _messages(messages: Any, conv: Conversation) -> int:
    if not isinstance(messages, list):
        _required("messages")
    if not messages:
        raise invalid("messages: at least one message is required")
    tokens = 0
    previous_calls: dict[str, str] = {}
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant"):
            raise invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise invalid('messages: first message must use the "user" role')
        if i > 0 and messages[i - 1].get("role") == role:
            raise invalid(
                'messages: roles must alternate between "user" and "assistant", but found '
                f'multiple "{role}" roles in a row (at {where})'
            )
        blocks = _blocks(msg, where)
        if previous_calls and role == "user":
            answered = {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"}
            missing = [c for c in previous_calls if c not in answered]
            if missing:
                raise invalid(
                    f"{where}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
        calls: dict[str, str] = {}
        texts: list[str] = []
        results: list[ToolResult] = []
        for j, block in enumerate(blocks):
            kind = block["type"]
            if kind == "text":
                texts.append(block["text"])
            elif kind == "tool_use":
                calls[block["id"]] = block["name"]
                tokens += count_words(orjson.dumps(block["input"]).decode())
            elif kind == "tool_result":
                if block["tool_use_id"] not in previous_calls:
                    raise invalid(
                        f"{where}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {block['tool_use_id']}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
                text, other = _result_text(block.get("content"), f"{where}.content.{j}.content")
                tokens += count_words(text) + other
                name = previous_calls[block["tool_use_id"]]
                results.append(ToolResult(name, text, block.get("is_error") is True))
            elif kind in ("image", "document", "search_result"):
                tokens += 1
        text = " ".join(texts)
        tokens += count_words(text)
        previous_calls = calls
        if role == "user":
            conv.last_user_text = text if texts or not results else conv.last_user_text
            conv.tool_results = results
            conv.last_role = "tool" if results else "user"
        else:
            conv.last_role = "assistant"
    if previous_calls:
        raise invalid(
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` "
            f"blocks immediately after: {', '.join(previous_calls)}. Each `tool_use` block must "
            "have a corresponding `tool_result` block in the next message."
        )
    return tokens


def _tools(body: dict[str, Any]) -> list[ToolDef]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid("tools: Input should be a valid list")
    out: list[ToolDef] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            _required(f"tools.{i}.name")
        custom = tool.get("type") in (None, "custom")
        if custom and not isinstance(tool.get("input_schema"), dict):
            _required(f"tools.{i}.custom.input_schema")
        if custom:  # a server tool is run by the fake itself (see web_search_tool)
            out.append(ToolDef(tool["name"], tool.get("input_schema") or {}))
    return out


def web_search_tool(body: Any) -> str | None:
    """The name of the web search server tool the request offers (``web_search_...``), if any:
    the fake then searches once before it answers, as Anthropic does."""
    tools = body.get("tools") if isinstance(body, dict) else None
    for tool in tools if isinstance(tools, list) else []:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind.startswith("web_search_"):
            return str(tool.get("name") or "web_search")
    return None


def _search_blocks(search: str, id: str, query: str) -> list[dict[str, Any]]:
    """The server tool call and its result that come before a searched answer's text."""
    result = {
        "type": "web_search_result",
        "url": WEB_SEARCH_URL,
        "title": WEB_SEARCH_TITLE,
        "encrypted_content": base64.b64encode(query.encode()).decode(),
        "page_age": None,
    }
    tool_id = f"srvtoolu_{id.removeprefix('msg_')}"
    return [
        {"type": "server_tool_use", "id": tool_id, "name": search, "input": {"query": query}},
        {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": [result]},
    ]


def _citation(text: str) -> dict[str, Any]:
    return {
        "type": "web_search_result_location",
        "url": WEB_SEARCH_URL,
        "title": WEB_SEARCH_TITLE,
        "encrypted_index": "ZmFrZQ==",
        "cited_text": text[:40],
    }


def _tool_choice(body: dict[str, Any], tools: list[ToolDef]) -> tuple[str, bool]:
    choice = body.get("tool_choice")
    if choice is None:
        return "auto", True
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in TOOL_CHOICES:
        raise invalid(
            f"tool_choice.type: Input tag '{kind}' is not one of: {', '.join(TOOL_CHOICES)}"
        )
    parallel = choice.get("disable_parallel_tool_use") is not True
    if kind == "tool":
        name = choice.get("name")
        if name not in {t.name for t in tools}:
            raise invalid(f"tool_choice.name: tool {name!r} is not one of the tools offered")
        return str(name), parallel
    return ("required" if kind == "any" else str(kind)), parallel


def parse_messages(body: Any, *, count_only: bool = False) -> tuple[Conversation, bool]:
    """Validate a Messages (or count_tokens) body; returns the conversation and ``stream``."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        _required("model")
    max_tokens = body.get("max_tokens")
    if not count_only:
        if max_tokens is None:
            _required("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise invalid(f"max_tokens: Input should be an integer >= 1, got {max_tokens!r}")
    conv = Conversation(model=model, max_tokens=max_tokens if not count_only else None)
    tokens = _messages(body.get("messages"), conv) + _system_tokens(body.get("system"))
    conv.input_tokens = tokens
    conv.tools = _tools(body)
    conv.tool_choice, conv.parallel_tool_calls = _tool_choice(body, conv.tools)
    conv.thinking = _thinking(body, max_tokens)
    if conv.thinking:
        _check_thinking_first(body["messages"])
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        raise invalid("top_k: Input should be an integer >= 0")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    conv.stop = stops
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean")
    _output_config(body.get("output_config"), conv)
    return conv, stream


EFFORTS = ("low", "medium", "high", "xhigh", "max")


def _output_config(config: Any, conv: Conversation) -> None:
    """``output_config``: a known ``effort``; a ``json_schema`` format makes the answer JSON
    that fills the schema (structured outputs)."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise invalid("output_config: Input should be a valid dictionary")
    extra = sorted(set(config) - {"effort", "format"})
    if extra:
        raise invalid(f"output_config.{extra[0]}: Extra inputs are not permitted")
    effort = config.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise invalid(
            f"output_config.effort: Input should be {', '.join(repr(e) for e in EFFORTS)}"
        )
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise invalid("output_config.format.type: Input should be 'json_schema'")
        if not isinstance(fmt.get("schema"), dict):
            _required("output_config.format.schema")
        conv.json_schema = fmt["schema"]


def _input(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def usage(reply: Reply, searched: bool = False) -> dict[str, Any]:
    created = reply.cache_creation_tokens
    out: dict[str, Any] = {
        "input_tokens": max(reply.input_tokens - reply.cached_tokens - created, 0),
        "output_tokens": reply.output_tokens,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": reply.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": created - reply.cache_creation_1h_tokens,
            "ephemeral_1h_input_tokens": reply.cache_creation_1h_tokens,
        },
        "service_tier": "standard",
    }
    if searched:
        out["server_tool_use"] = {"web_search_requests": 1}
    return out


def _shell(id: str, model: str) -> dict[str, Any]:
    return {"id": id, "type": "message", "role": "assistant", "model": model, "content": []}


def message(
    reply: Reply, *, id: str, model: str, search: str | None = None, query: str = ""
) -> dict[str, Any]:
    """A whole message; with ``search`` (a web search tool's name) the text is preceded by the
    search and its result, and cites it."""
    out = _shell(id, model)
    if reply.thinking is not None:
        out["content"].append(
            {
                "type": "thinking",
                "thinking": reply.thinking,
                "signature": sign_thinking(reply.thinking),
            }
        )
    if search is not None:
        out["content"] += _search_blocks(search, id, query)
    if reply.text or not reply.calls:
        text: dict[str, Any] = {"type": "text", "text": reply.text}
        if search is not None:
            text["citations"] = [_citation(reply.text)]
        out["content"].append(text)
    for call in reply.calls:
        out["content"].append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call.arguments)}
        )
    out["stop_reason"] = STOP_REASONS[reply.finish]
    out["stop_sequence"] = reply.stop_sequence
    out["usage"] = usage(reply, search is not None)
    return out


def _search_events(
    search: str, id: str, query: str, index: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The streamed search: the server tool call (its input in JSON pieces), then its result."""
    call, result = _search_blocks(search, id, query)
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": {**call, "input": {}}},
    )
    arguments = orjson.dumps(call["input"]).decode()
    for cut in range(0, len(arguments), TOOL_INPUT_FRAGMENT_CHARS):
        delta = {
            "type": "input_json_delta",
            "partial_json": arguments[cut : cut + TOOL_INPUT_FRAGMENT_CHARS],
        }
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}
    start = {"type": "content_block_start", "index": index + 1, "content_block": result}
    yield "content_block_start", start
    yield "content_block_stop", {"type": "content_block_stop", "index": index + 1}


def events(
    reply: Reply,
    *,
    id: str,
    model: str,
    words_per_chunk: int,
    search: str | None = None,
    query: str = "",
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The exact SSE sequence of a streamed message: (event name, data)."""
    start = _shell(id, model)
    start.update(stop_reason=None, stop_sequence=None, usage={**usage(reply), "output_tokens": 1})
    yield "message_start", {"type": "message_start", "message": start}
    index = 0
    if reply.thinking is not None:
        yield from _thinking_events(reply.thinking, words_per_chunk)
        index = 1
    if search is not None:
        yield from _search_events(search, id, query, index)
        index += 2
    if reply.text or not reply.calls:
        block: dict[str, Any] = {"type": "text", "text": ""}
        if search is not None:
            block["citations"] = []
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        if index == 0:
            yield "ping", {"type": "ping"}
        if search is not None:
            delta = {"type": "citations_delta", "citation": _citation(reply.text)}
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        pieces = split_words(reply.text)
        for at in range(0, len(pieces), words_per_chunk):
            delta = {"type": "text_delta", "text": "".join(pieces[at : at + words_per_chunk])}
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    for offset, call in enumerate(reply.calls):
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        at_index = index + offset
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": at_index, "content_block": block},
        )
        if at_index == 0:
            yield "ping", {"type": "ping"}
        args = call.arguments
        for cut in range(0, len(args), TOOL_INPUT_FRAGMENT_CHARS):
            delta = {
                "type": "input_json_delta",
                "partial_json": args[cut : cut + TOOL_INPUT_FRAGMENT_CHARS],
            }
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": at_index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": at_index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": STOP_REASONS[reply.finish],
                "stop_sequence": reply.stop_sequence,
            },
            "usage": {
                "output_tokens": reply.output_tokens,
                **({"server_tool_use": {"web_search_requests": 1}} if search else {}),
            },
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _thinking_events(text: str, words_per_chunk: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """A streamed thinking block at index 0: its text in word chunks, then its signature."""
    block = {"type": "thinking", "thinking": "", "signature": ""}
    yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    yield "ping", {"type": "ping"}
    pieces = split_words(text)
    for at in range(0, len(pieces), words_per_chunk):
        delta = {"type": "thinking_delta", "thinking": "".join(pieces[at : at + words_per_chunk])}
        yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    signature = {"type": "signature_delta", "signature": sign_thinking(text)}
    yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": signature}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
