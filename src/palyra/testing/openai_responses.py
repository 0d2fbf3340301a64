"""OpenAI ``/v1/responses``: request validation, the Response object and its SSE events (pure).

Reasoning: a request with ``reasoning`` (effort other than ``none``) gets a ``reasoning`` item
before the answer, its summary ``Thinking about: <last user text>`` and its
``encrypted_content`` ``enc_<sha256 of the summary>``. A reasoning item sent back as input must
carry an ``encrypted_content`` the fake issued, byte for byte, or the request is a 400 (as
OpenAI answers reasoning it cannot decrypt). Built-in tools offered run before the answer
(:mod:`palyra.testing.openai_builtin_tools`); their items are accepted back as input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from palyra.testing import openai_builtin_tools as builtin
from palyra.testing.conversation import (
    Conversation,
    Reply,
    ToolDef,
    ToolResult,
    count_words,
    split_words,
)
from palyra.testing.openai_chat import token_logprobs
from palyra.testing.wire_errors import invalid

ROLES = ("user", "assistant", "system", "developer")
PART_TYPES = ("input_text", "input_image", "input_file", "output_text", "refusal")
MIN_OUTPUT_TOKENS = 16
TOOL_ARGUMENT_FRAGMENT_CHARS = 10


SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
# The body parameters of OpenAI's POST /v1/responses (CreateResponse in its OpenAPI document).
PARAMETERS = frozenset(
    {
        "background",
        "context_management",
        "conversation",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
LOGPROBS_INCLUDE = "message.output_text.logprobs"
# Items of built-in tools (and the fake's own future kind) a client may send back as input.
PASSED_BACK_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_list_tools",
        "mcp_call",
        "mcp_approval_request",
        "mcp_approval_response",
        "computer_call",
        "computer_call_output",
        builtin.FUTURE_ITEM,
    }
)


@dataclass(frozen=True, slots=True)
class ResponsesOptions:
    stream: bool
    reasoning: bool
    logprobs: bool = False
    top_logprobs: int = 0
    service_tier: str = "default"
    builtin_tools: tuple[dict[str, Any], ...] = ()
    """The built-in tools offered, in order: each runs once on ``query``."""
    query: str = ""
    future: bool = False
    """Send an item kind, an event type and a Response field no client knows yet."""


def reasoning_summary(conv: Conversation) -> str:
    return f"Thinking about: {conv.last_user_text.strip()}"


def encrypted(summary: str) -> str:
    return "enc_" + hashlib.sha256(summary.encode()).hexdigest()


def _content(content: Any, where: str) -> tuple[str, int]:
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise invalid(
            f"Invalid type for '{where}': expected a string or an array of content parts.",
            where,
            "invalid_type",
        )
    texts: list[str] = []
    other = 0
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in PART_TYPES:
            raise invalid(f"Invalid value: '{kind}'.", f"{where}[{j}].type", "invalid_value")
        if kind in ("input_text", "output_text"):
            if not isinstance(part.get("text"), str):
                raise invalid(
                    f"Missing required parameter: '{where}[{j}].text'.",
                    f"{where}[{j}].text",
                    "missing_required_parameter",
                )
            texts.append(part["text"])
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        else:
            other += 1
    return " ".join(texts), other


def _input(items: Any, conv: Conversation) -> None:
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise invalid("Invalid type for 'input': expected a string or an array.", "input")
    names: dict[str, str] = {}
    computer_calls: set[str] = set()
    tokens = 0
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise invalid(f"Invalid value: '{role}'.", f"{where}.role", "invalid_value")
            text, other = _content(item.get("content"), f"{where}.content")
            tokens += count_words(text) + other
            if role == "user":
                conv.last_user_text, conv.last_role, conv.tool_results = text, "user", []
            elif role == "assistant":
                conv.last_role, conv.tool_results = "assistant", []
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise invalid(
                        f"Missing required parameter: '{where}.{key}'.",
                        f"{where}.{key}",
                        "missing_required_parameter",
                    )
            names[item["call_id"]] = item["name"]
            tokens += count_words(item["arguments"])
            conv.last_role, conv.tool_results = "assistant", []
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id not in names:
                raise invalid(
                    f"No tool call found for function call output with call_id {call_id}.",
                    "input",
                )
            output = item.get("output")
            text = output if isinstance(output, str) else _content(output, f"{where}.output")[0]
            tokens += count_words(text)
            conv.tool_results.append(ToolResult(names[call_id], text))
            conv.last_role = "tool"
        elif kind in PASSED_BACK_ITEMS:
            if kind == "computer_call":
                computer_calls.add(str(item.get("call_id")))
            elif kind == "computer_call_output" and item.get("call_id") not in computer_calls:
                raise invalid(
                    "No tool call found for computer call output with call_id "
                    f"{item.get('call_id')}.",
                    "input",
                )
            conv.last_role, conv.tool_results = "assistant", []
        elif kind == "reasoning":
            if not isinstance(item.get("id"), str):
                raise invalid(
                    f"Missing required parameter: '{where}.id'.",
                    f"{where}.id",
                    "missing_required_parameter",
                )
            summary = item.get("summary")
            texts = [p.get("text", "") for p in summary or [] if isinstance(p, dict)]
            if item.get("encrypted_content") != encrypted("\n\n".join(texts)):
                raise invalid(
                    f"The encrypted content for item {where} could not be verified.",
                    f"{where}.encrypted_content",
                    "invalid_encrypted_content",
                )
        else:
            raise invalid(f"Invalid value: '{kind}'.", f"{where}.type", "invalid_value")
    conv.input_tokens = tokens


def _tools(body: dict[str, Any], conv: Conversation) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise invalid(f"Invalid 'tools[{i}]'.", f"tools[{i}]", "invalid_value")
        if tool["type"] != "function":
            continue  # built-in tools: see ResponsesOptions.builtin_tools
        if not isinstance(tool.get("name"), str):
            raise invalid(
                f"Missing required parameter: 'tools[{i}].name'.",
                f"tools[{i}].name",
                "missing_required_parameter",
            )
        params = tool.get("parameters")
        conv.tools.append(ToolDef(tool["name"], params if isinstance(params, dict) else {}))
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        conv.tool_choice = str(choice.get("name"))
    elif choice in ("auto", "none", "required"):
        conv.tool_choice = str(choice)


def _text_format(body: dict[str, Any], conv: Conversation) -> None:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return
    if fmt.get("type") == "json_object":
        conv.json_object = True
    elif fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise invalid(
                "Missing required parameter: 'text.format.name'.",
                "text.format",
                "missing_required_parameter",
            )
        conv.json_schema = fmt["schema"]


def _builtin_tools(body: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    tools = body.get("tools") or []
    return tuple(t for t in tools if isinstance(t, dict) and t.get("type") != "function")


def parse_responses(body: Any) -> tuple[Conversation, ResponsesOptions]:
    """Validate a Responses body the way the live API does; 400s name the parameter."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", None, "missing_required_parameter")
    for name in body:
        if name not in PARAMETERS:
            raise invalid(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    conv = Conversation(model=model)
    instructions = body.get("instructions")
    _input(body.get("input", []), conv)
    if isinstance(instructions, str):
        conv.input_tokens += count_words(instructions)
    _tools(body, conv)
    conv.parallel_tool_calls = body.get("parallel_tool_calls") is not False
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < MIN_OUTPUT_TOKENS):
        raise invalid(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_OUTPUT_TOKENS}, but got {limit} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    conv.max_tokens = limit
    _text_format(body, conv)
    reasoning = body.get("reasoning")
    thinks = isinstance(reasoning, dict) and reasoning.get("effort") not in (None, "none")
    top = body.get("top_logprobs")
    if top is not None and (type(top) is not int or not 0 <= top <= 20):
        raise invalid("Invalid 'top_logprobs': expected 0 to 20.", "top_logprobs")
    tier = body.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise invalid(f"Invalid value: '{tier}'.", "service_tier", "invalid_value")
    include = body.get("include") or []
    return conv, ResponsesOptions(
        stream=body.get("stream") is True,
        reasoning=thinks,
        logprobs=isinstance(include, list) and LOGPROBS_INCLUDE in include,
        top_logprobs=top or 0,
        service_tier="default" if tier in (None, "auto") else str(tier),
        builtin_tools=_builtin_tools(body),
        query=conv.last_user_text,
    )


def _usage(reply: Reply, reasoning_tokens: int) -> dict[str, Any]:
    output = reply.output_tokens + reasoning_tokens
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached_tokens},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": reply.input_tokens + output,
    }


def _text_logprobs(text: str, options: ResponsesOptions | None) -> list[dict[str, Any]]:
    if options is None or not options.logprobs:
        return []
    content: list[dict[str, Any]] = token_logprobs(split_words(text), options.top_logprobs)[
        "content"
    ]
    return content


def _items(
    reply: Reply, id: str, summary: str | None, options: ResponsesOptions | None = None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if summary is not None:
        items.append(
            {
                "id": f"rs_{id}",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": summary}],
                "encrypted_content": encrypted(summary),
            }
        )
    ran: list[dict[str, Any]] = []
    if options is not None:
        ran = builtin.tool_items(list(options.builtin_tools), options.query, id)
        if options.future:
            ran.append(builtin.future_item(id))
    items += ran
    if builtin.waits_for_output(ran):
        return items
    searched = any(item["type"] == "web_search_call" for item in ran)
    if not reply.calls:
        annotations = (
            [
                {
                    "type": "url_citation",
                    "start_index": 0,
                    "end_index": len(reply.text),
                    "url": builtin.citation_url(options.query),
                    "title": f"Search: {options.query}",
                }
            ]
            if searched and options is not None
            else []
        )
        items.append(
            {
                "id": f"msg_{id}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": reply.text,
                        "annotations": annotations,
                        "logprobs": _text_logprobs(reply.text, options),
                    }
                ],
            }
        )
    for n, call in enumerate(reply.calls):
        items.append(
            {
                "id": f"fc_{id}_{n}",
                "type": "function_call",
                "status": "completed",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
            }
        )
    return items


def _delta(scored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Logprobs as a delta event carries them (OpenAI's ResponseLogProb: no bytes)."""
    return [
        {
            "token": t["token"],
            "logprob": t["logprob"],
            "top_logprobs": [
                {"token": a["token"], "logprob": a["logprob"]} for a in t["top_logprobs"]
            ],
        }
        for t in scored
    ]


def response(
    reply: Reply,
    *,
    id: str,
    model: str,
    created: int,
    summary: str | None,
    options: ResponsesOptions | None = None,
) -> dict[str, Any]:
    cut = reply.finish == "length"
    body: dict[str, Any] = {
        "id": f"resp_{id}",
        "object": "response",
        "created_at": created,
        "status": "incomplete" if cut else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "model": model,
        "output": _items(reply, id, summary, options),
        "service_tier": options.service_tier if options is not None else "default",
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "store": False,
        "usage": _usage(reply, count_words(summary) if summary else 0),
    }
    if options is not None and options.future:
        body["future_field"] = {"added_in": "a later API version"}
    return body


def events(
    reply: Reply,
    *,
    id: str,
    model: str,
    created: int,
    summary: str | None,
    words_per_chunk: int,
    options: ResponsesOptions | None = None,
) -> Iterator[dict[str, Any]]:
    """The streamed answer, in OpenAI's order, each event with its ``sequence_number``."""
    final = response(reply, id=id, model=model, created=created, summary=summary, options=options)
    start = {**final, "status": "in_progress", "output": [], "incomplete_details": None}
    start.pop("usage")
    sequence = 0

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal sequence
        sequence += 1
        return {"type": kind, "sequence_number": sequence - 1, **fields}

    yield event("response.created", response=start)
    yield event("response.in_progress", response=start)
    for position, item in enumerate(final["output"]):
        where = {"item_id": item["id"], "output_index": position}
        if item["type"] == "reasoning":
            text = item["summary"][0]["text"]
            yield event(
                "response.output_item.added", output_index=position, item={**item, "summary": []}
            )
            part = {"type": "summary_text", "text": ""}
            yield event(
                "response.reasoning_summary_part.added", **where, summary_index=0, part=part
            )
            for piece in split_words(text):
                yield event(
                    "response.reasoning_summary_text.delta", **where, summary_index=0, delta=piece
                )
            yield event("response.reasoning_summary_text.done", **where, summary_index=0, text=text)
            part = {"type": "summary_text", "text": text}
            yield event("response.reasoning_summary_part.done", **where, summary_index=0, part=part)
        elif item["type"] == "message":
            text = item["content"][0]["text"]
            yield event(
                "response.output_item.added",
                output_index=position,
                item={**item, "status": "in_progress", "content": []},
            )
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield event("response.content_part.added", **where, content_index=0, part=empty)
            pieces = split_words(text)
            scored = item["content"][0]["logprobs"]
            for at in range(0, len(pieces), words_per_chunk):
                delta = "".join(pieces[at : at + words_per_chunk])
                yield event(
                    "response.output_text.delta",
                    **where,
                    content_index=0,
                    delta=delta,
                    logprobs=_delta(scored[at : at + words_per_chunk]),
                )
            for n, annotation in enumerate(item["content"][0]["annotations"]):
                yield event(
                    "response.output_text.annotation.added",
                    **where,
                    content_index=0,
                    annotation_index=n,
                    annotation=annotation,
                )
            yield event(
                "response.output_text.done",
                **where,
                content_index=0,
                text=text,
                logprobs=_delta(scored),
            )
            yield event(
                "response.content_part.done", **where, content_index=0, part=item["content"][0]
            )
        elif item["type"] != "function_call":  # a built-in tool's item
            yield event(
                "response.output_item.added", output_index=position, item=builtin.in_progress(item)
            )
            for kind, fields in builtin.item_events(item):
                yield event(kind, **where, **fields)
        else:
            args = item["arguments"]
            yield event(
                "response.output_item.added",
                output_index=position,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for at in range(0, len(args), TOOL_ARGUMENT_FRAGMENT_CHARS):
                delta = args[at : at + TOOL_ARGUMENT_FRAGMENT_CHARS]
                yield event("response.function_call_arguments.delta", **where, delta=delta)
            yield event(
                "response.function_call_arguments.done", **where, name=item["name"], arguments=args
            )
        yield event("response.output_item.done", output_index=position, item=item)
    kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    yield event(kind, response=final)
