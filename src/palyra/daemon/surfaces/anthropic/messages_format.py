"""The Anthropic Messages wire format at our edge, as pure functions on plain data.

Request JSON -> neutral ``ChatRequest``; neutral ``ChatResponse`` -> ``message`` JSON; neutral
stream events -> the ``message_start`` ... ``message_stop`` SSE sequence; ``ErrorEnvelope`` ->
Anthropic error JSON. ``thinking``, ``top_k``, ``cache_control`` (system blocks, content blocks,
tools), documents and thinking history are carried (see ``content_blocks``); the system prompt
keeps its form (string or blocks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from palyra.daemon.surfaces.anthropic.content_blocks import (
    IMAGE_KEYS,
    TEXT_KEYS,
    TOOL_RESULT_KEYS,
    TOOL_USE_KEYS,
    document,
    marked,
    reasoning_json,
    thinking_block,
    thinking_config,
)
from palyra.daemon.surfaces.anthropic.output_config import read_output_config
from palyra.daemon.surfaces.wire_checks import (
    boolean,
    invalid,
    json_kind,
    load_json,
    obj,
    string,
)
from palyra.model import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    ErrorEnvelope,
    ErrorEvent,
    ExtensionEvent,
    ExtensionPart,
    Extensions,
    FailureClass,
    FinishReason,
    ImagePart,
    Message,
    MessageEnd,
    MessageStart,
    NamedToolChoice,
    PalyraError,
    ReasoningConfig,
    RedactedThinking,
    Role,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    Usage,
    UsageEvent,
)
from palyra.model.extensions import ANTHROPIC_MESSAGES, unknown_fields

_ERROR_TYPES: dict[FailureClass, str] = {
    FailureClass.AUTH_INVALID: "authentication_error",
    FailureClass.AUTH_EXPIRED: "authentication_error",
    FailureClass.PERMISSION_DENIED: "permission_error",
    FailureClass.NOT_FOUND: "not_found_error",
    FailureClass.RATE_LIMITED: "rate_limit_error",
    FailureClass.QUOTA_EXHAUSTED: "rate_limit_error",
    FailureClass.INVALID_REQUEST: "invalid_request_error",
    FailureClass.CONTEXT_TOO_LONG: "invalid_request_error",
    FailureClass.CONTENT_POLICY: "invalid_request_error",
    FailureClass.UNSUPPORTED_CAPABILITY: "invalid_request_error",
    FailureClass.UPSTREAM_UNAVAILABLE: "overloaded_error",
    FailureClass.CIRCUIT_OPEN: "overloaded_error",
    FailureClass.TIMEOUT: "timeout_error",
}

_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}

_TOOL_CHOICES: dict[str, ToolChoice] = {"auto": "auto", "any": "required", "none": "none"}

_THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
# Block types the contract models that belong to one side of the conversation only: refused on
# the other (any type it does not model is kept whole, see ``_foreign``).
_ASSISTANT_ONLY = frozenset({"tool_use", "thinking", "redacted_thinking"})
_USER_ONLY = frozenset({"image", "document", "tool_result"})

_WIRE_NAMES = {"max_output_tokens": "max_tokens", "stop": "stop_sequences"}


def _message(role: Role, parts: list[ContentPart], *, content_list: bool = False) -> Message:
    """A message from parts built (and validated) here, without validating it again: each
    caller puts only the part kinds its role may hold (text everywhere, images and documents
    for user and tool, tool calls and reasoning for assistant, tool results for tool)."""
    # Every field given, so model_construct resolves no defaults (a deep copy each); the fields
    # set stay those a validated message from the same parts would have.
    if content_list:
        return Message.model_construct(
            {"role", "content", "content_list"},
            role=role,
            content=parts,
            name=None,
            content_list=True,
        )
    return Message.model_construct(
        {"role", "content"}, role=role, content=parts, name=None, content_list=False
    )


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """Content as a list of block objects; a plain string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(
            f"{where} must be a string or an array of content blocks, got {json_kind(content)}",
            where,
        )
    return [obj(block, f"{where}[{j}]") for j, block in enumerate(content)]


def _unsupported(kind: Any, where: str, allowed: str) -> PalyraError:
    return invalid(
        f"{where} has type {kind!r}, which Palyra does not accept here; send {allowed}", where
    )


def _image(block: dict[str, Any], where: str) -> ImagePart:
    source = obj(block.get("source"), f"{where}.source")
    kind = source.get("type")
    extra = marked(block, IMAGE_KEYS, where)
    try:
        if kind == "base64":
            return ImagePart(
                data=string(source.get("data"), f"{where}.source.data"),
                media_type=string(source.get("media_type"), f"{where}.source.media_type"),
                **extra,
            )
        if kind == "url":
            return ImagePart(url=string(source.get("url"), f"{where}.source.url"), **extra)
    except ValidationError as exc:
        raise invalid(f"{where}.source: {_first_error(exc)}", where) from exc
    raise invalid(f"{where}.source.type is {kind!r}; use 'base64' or 'url'", where)


def _text(block: dict[str, Any], where: str) -> TextPart:
    text = string(block.get("text"), f"{where}.text")
    if block.keys() <= _PLAIN_TEXT_KEYS:  # the usual block: nothing more to look for
        return TextPart(text=text)
    return TextPart(text=text, **marked(block, TEXT_KEYS, where))


_PLAIN_TEXT_KEYS = frozenset({"type", "text"})


def _foreign(block: dict[str, Any]) -> ExtensionPart:
    """A block of a type the contract does not model, kept whole for an Anthropic upstream
    (built without a second validation: both fields come as they are)."""
    return ExtensionPart.model_construct(owner=ANTHROPIC_MESSAGES, block=block)


def _system(raw: Any) -> list[Message]:
    if raw is None:
        return []
    parts: list[ContentPart] = []
    for j, block in enumerate(_blocks(raw, "system")):
        if block.get("type") != "text":
            raise _unsupported(block.get("type"), f"system[{j}]", "'text' blocks")
        parts.append(_text(block, f"system[{j}]"))
    content_list = isinstance(raw, list)
    return [_message(Role.SYSTEM, parts, content_list=content_list)] if parts else []


def _tool_result(block: dict[str, Any], where: str) -> Message:
    """One ``tool_result`` block as a tool message: its text joined, its images kept beside it."""
    call_id = string(block.get("tool_use_id"), f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[ContentPart] = []
    if content is not None:
        for k, inner in enumerate(_blocks(content, f"{where}.content")):
            inner_where = f"{where}.content[{k}]"
            if inner.get("type") == "text":
                texts.append(_text(inner, inner_where).text)
            elif inner.get("type") == "image":
                images.append(_image(inner, inner_where))
            elif inner.get("type") == "document":
                images.append(document(inner, inner_where))
            else:
                raise _unsupported(
                    inner.get("type"), inner_where, "'text', 'image' or 'document' blocks"
                )
    result = ToolResultPart(
        tool_call_id=call_id,
        content="".join(texts),
        is_error=boolean(block.get("is_error"), f"{where}.is_error"),
        **marked(block, TOOL_RESULT_KEYS, where),
    )
    return _message(Role.TOOL, [result, *images])


def _user_turn(blocks: list[dict[str, Any]], where: str) -> list[Message]:
    """Tool results first (each its own tool message, in order), then the rest as one user turn."""
    results: list[Message] = []
    parts: list[ContentPart] = []
    for j, block in enumerate(blocks):
        kind, block_where = block.get("type"), f"{where}[{j}]"
        if kind == "text":
            parts.append(_text(block, block_where))
        elif kind == "image":
            parts.append(_image(block, block_where))
        elif kind == "tool_result":
            results.append(_tool_result(block, block_where))
        elif kind == "document":
            parts.append(document(block, block_where))
        elif isinstance(kind, str) and kind not in _ASSISTANT_ONLY:
            parts.append(_foreign(block))  # search_result, container_upload, a newer type
        else:
            raise _unsupported(
                kind, block_where, "'text', 'image', 'document' or 'tool_result' blocks"
            )
    if parts or not results:
        results.append(_message(Role.USER, parts))
    return results


def _assistant_turn(blocks: list[dict[str, Any]], where: str) -> Message:
    parts: list[ContentPart] = []
    for j, block in enumerate(blocks):
        kind, block_where = block.get("type"), f"{where}[{j}]"
        if kind == "text":
            parts.append(_text(block, block_where))
        elif kind == "tool_use":
            tool_input = obj(block.get("input", {}), f"{block_where}.input")
            parts.append(
                ToolCallPart(
                    id=string(block.get("id"), f"{block_where}.id"),
                    name=string(block.get("name"), f"{block_where}.name"),
                    arguments=orjson.dumps(tool_input).decode(),
                    **marked(block, TOOL_USE_KEYS, block_where),
                )
            )
        elif kind in _THINKING_BLOCKS:
            parts.append(thinking_block(block, block_where))
        elif isinstance(kind, str) and kind not in _USER_ONLY:
            parts.append(_foreign(block))  # server_tool_use, web_search_tool_result, ...
        else:
            raise _unsupported(
                kind, block_where, "'text', 'tool_use', 'thinking' or 'redacted_thinking' blocks"
            )
    return _message(Role.ASSISTANT, parts)


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise invalid("messages must be a non-empty array", "messages")
    out: list[Message] = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        message = obj(item, where)
        role = message.get("role")
        blocks = _blocks(message.get("content"), f"{where}.content")
        if role == "user":
            out += _user_turn(blocks, f"{where}.content")
        elif role == "assistant":
            out.append(_assistant_turn(blocks, f"{where}.content"))
        else:
            raise invalid(f"{where}.role is {role!r}; use 'user' or 'assistant'", where)
        extensions = unknown_fields(message, _MESSAGE_KEYS, ANTHROPIC_MESSAGES)
        if extensions is not None:  # on the turn's last message, where the payload closes it
            out[-1] = out[-1].model_copy(update={"extensions": extensions})
    return out


# A message's fields the contract models; any other travels as the message's extensions.
_MESSAGE_KEYS = frozenset({"role", "content"})
# The body's fields the contract models; any other travels as the request's extensions.
BODY_KEYS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
    }
)


# A custom tool's fields the contract models; any other (``type``, ``input_examples``,
# ``defer_loading``, ...) travels in the tool's extensions.
_TOOL_KEYS = frozenset({"name", "description", "strict", "cache_control", "input_schema"})
# A server tool (one the upstream runs) is its name and its own options, all kept as sent.
_SERVER_TOOL_KEYS = frozenset({"name"})


def _tool(raw: Any, i: int) -> ToolSpec:
    where = f"tools[{i}]"
    tool = obj(raw, where)
    kind = tool.get("type")
    if kind is not None and kind != "custom":
        if not isinstance(kind, str):
            raise invalid(f"{where}.type must be a string", where)
        # A tool the upstream runs (web search, code execution, ...): an Anthropic upstream
        # gets it as sent; a model of another API has no such tool and refuses it (payload).
        spec = {
            "name": tool.get("name"),
            "extensions": Extensions(
                owner=ANTHROPIC_MESSAGES,
                fields={k: v for k, v in tool.items() if k not in _SERVER_TOOL_KEYS},
            ),
        }
        try:
            return ToolSpec.model_validate(spec)
        except ValidationError as exc:
            raise invalid(f"{where}.{_first_error(exc)}", where) from exc
    spec = {"name": tool.get("name")}
    if tool.get("description") is not None:
        spec["description"] = tool["description"]
    if tool.get("strict") is not None:
        spec["strict"] = tool["strict"]
    spec.update(marked(tool, _TOOL_KEYS, where))
    spec["parameters"] = obj(tool.get("input_schema"), f"{where}.input_schema")
    try:
        return ToolSpec.model_validate(spec)
    except ValidationError as exc:
        raise invalid(f"{where}.{_first_error(exc)}", where) from exc


def _tool_choice(raw: Any) -> tuple[ToolChoice | None, bool | None]:
    """(neutral tool choice, parallel tool calls) from Anthropic's ``tool_choice`` object."""
    if raw is None:
        return None, None
    choice = obj(raw, "tool_choice")
    kind = choice.get("type")
    disable = boolean(
        choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use"
    )
    parallel = False if disable else None
    if kind == "tool":
        return NamedToolChoice(name=string(choice.get("name"), "tool_choice.name")), parallel
    if isinstance(kind, str) and kind in _TOOL_CHOICES:
        return _TOOL_CHOICES[kind], parallel
    raise invalid(
        f"tool_choice.type is {kind!r}; use 'auto', 'any', 'tool' (with name) or 'none'",
        "tool_choice",
    )


def _stop_sequences(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return raw
    raise invalid("stop_sequences must be an array of strings", "stop_sequences")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(_WIRE_NAMES.get(str(p), str(p)) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


def _user_id(metadata: Any) -> str | None:
    if metadata is None:
        return None
    user_id = obj(metadata, "metadata").get("user_id")
    return None if user_id is None else string(user_id, "metadata.user_id")


# Anthropic's request tiers in the neutral (OpenAI) words, and the answer's tiers back.
_SERVICE_TIERS = {"auto": "auto", "standard_only": "default"}
_ANSWER_TIERS = {"default": "standard"}


def _service_tier(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or raw not in _SERVICE_TIERS:
        raise invalid(f"service_tier is {raw!r}; use 'auto' or 'standard_only'", "service_tier")
    return _SERVICE_TIERS[raw]


def parse_messages_request(
    data: Any, *, require_max_tokens: bool = True, headers: Mapping[str, str] | None = None
) -> ChatRequest:
    """An Anthropic ``/v1/messages`` body as a neutral request, or a 400 naming the field.

    ``max_tokens`` is required, as Anthropic requires it; ``count_tokens`` bodies omit it.
    ``headers`` are the client's headers a provider may pass on (``anthropic-beta``, ...).
    """
    body = obj(data, "the request body")
    if require_max_tokens and body.get("max_tokens") is None:
        raise invalid("max_tokens: Field required (Anthropic requires it on every call)")
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        raise invalid(f"temperature is {temperature}; Anthropic accepts 0 to 1", "temperature")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid("tools must be an array", "tools")
    tool_choice, parallel = _tool_choice(body.get("tool_choice"))
    options: dict[str, Any] = {}
    if "service_tier" in body:
        options["service_tier"] = _service_tier(body["service_tier"])
    if headers:
        options["headers"] = headers
    extensions = unknown_fields(body, BODY_KEYS, ANTHROPIC_MESSAGES)
    reasoning = thinking_config(body.get("thinking"))
    if extensions is not None:
        if body.get("output_config") is not None:
            config = read_output_config(body["output_config"])
            if config.mapped:  # the contract carries all of it: other APIs read its fields
                extensions = extensions.model_copy(update={"mapped": frozenset({"output_config"})})
            if config.effort is not None:
                reasoning = (reasoning or ReasoningConfig()).model_copy(
                    update={"effort": config.effort}
                )
            options["response_format"] = config.response_format
        options["extensions"] = extensions
    try:
        return ChatRequest.model_validate(
            {
                **options,
                "model": body.get("model"),
                "messages": _system(body.get("system")) + _messages(body.get("messages")),
                "tools": [_tool(t, i) for i, t in enumerate(tools)],
                "tool_choice": tool_choice,
                "parallel_tool_calls": parallel,
                "max_output_tokens": body.get("max_tokens"),
                "temperature": temperature,
                "top_p": body.get("top_p"),
                "top_k": body.get("top_k"),
                "reasoning": reasoning,
                "stop": _stop_sequences(body.get("stop_sequences")),
                "stream": boolean(body.get("stream"), "stream"),
                "user": _user_id(body.get("metadata")),
            }
        )
    except ValidationError as exc:
        raise invalid(_first_error(exc)) from exc


def load_body(raw: bytes) -> Any:
    """Decode a request body; malformed or too deeply nested JSON is a 400 like any other bad
    field."""
    return load_json(raw)


def stop_reason(reason: FinishReason) -> str:
    return _STOP_REASONS[reason]


def message_id(response_id: str) -> str:
    """Anthropic ids start with ``msg_``; other providers' ids are kept behind that prefix."""
    return response_id if response_id.startswith("msg_") else f"msg_{response_id}"


def usage_json(usage: Usage) -> dict[str, int]:
    """Anthropic usage: ``input_tokens`` excludes cache reads and writes, which stand beside it."""
    cached = usage.cached_input_tokens + usage.cache_creation_input_tokens
    return {
        "input_tokens": max(usage.input_tokens - cached, 0),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
    }


# Fields the Messages API always sends (null when unused); the official OpenAPI document marks
# them required, and the SDK models know them.
_MESSAGE_NULLS: dict[str, Any] = {"stop_details": None, "container": None}
_USAGE_NULLS: dict[str, Any] = {
    "cache_creation": None,
    "inference_geo": None,
    "output_tokens_details": None,
    "server_tool_use": None,
    "service_tier": None,
}
_DIRECT_CALLER: dict[str, Any] = {"type": "direct"}


def message_usage_json(usage: Usage, service_tier: str | None = None) -> dict[str, Any]:
    """The full ``usage`` object of a ``message`` (``message_delta`` carries the short one)."""
    full = {**usage_json(usage), **_USAGE_NULLS}
    if usage.cache_creation_5m_input_tokens is not None:
        full["cache_creation"] = cache_creation_json(usage)
    if service_tier is not None:
        full["service_tier"] = _ANSWER_TIERS.get(service_tier, service_tier)
    return full


def cache_creation_json(usage: Usage) -> dict[str, int]:
    """Anthropic's ``usage.cache_creation``: the cache writes by lifetime."""
    return {
        "ephemeral_5m_input_tokens": usage.cache_creation_5m_input_tokens or 0,
        "ephemeral_1h_input_tokens": usage.cache_creation_1h_input_tokens or 0,
    }


def tool_input(call: ToolCallPart) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's ``input`` must be."""
    value = call.arguments_json()
    return value if isinstance(value, dict) else {"raw": call.arguments}


def _content_json(response: ChatResponse) -> list[dict[str, Any]]:
    """The answer's content blocks: an Anthropic upstream's own list when it kept one (blocks
    and fields the contract does not model, in their order), else built from the answer."""
    kept = response.content_blocks
    if kept is not None and kept.owner == ANTHROPIC_MESSAGES:
        return list(kept.fields["content"])
    content: list[dict[str, Any]] = [reasoning_json(r) for r in response.reasoning]
    if response.content:
        content.append({"type": "text", "text": response.content, "citations": None})
    content += [
        {
            "type": "tool_use",
            "id": c.id,
            "name": c.name,
            "input": tool_input(c),
            "caller": _DIRECT_CALLER,
        }
        for c in response.tool_calls
    ]
    return content


def message_json(response: ChatResponse) -> dict[str, Any]:
    """A neutral answer as an Anthropic ``message`` object."""
    content = _content_json(response)
    body = {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": stop_reason(response.finish_reason),
        "stop_sequence": response.stop_sequence,
        **_MESSAGE_NULLS,
        "usage": message_usage_json(response.usage, response.service_tier),
    }
    kept = response.usage_extensions
    if kept is not None and kept.owner == ANTHROPIC_MESSAGES:
        body["usage"].update(kept.fields)  # server_tool_use and the like, as sent
    extensions = response.extensions
    if extensions is not None and extensions.owner == ANTHROPIC_MESSAGES:
        body.update(extensions.fields)  # an Anthropic upstream's own fields, as it sent them
    return body


def error_type(envelope: ErrorEnvelope) -> str:
    if envelope.http_status == 413:
        return "request_too_large"
    if envelope.http_status == 402:
        return "billing_error"  # Anthropic's type for 402 (a spent budget, here)
    return _ERROR_TYPES.get(envelope.failure_class, "api_error")


def error_json(envelope: ErrorEnvelope) -> dict[str, Any]:
    """The Anthropic error object for an envelope."""
    return {"type": "error", "error": {"type": error_type(envelope), "message": envelope.message}}


def sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessageEventEncoder:
    """Turns neutral events into Anthropic's SSE sequence, one call per event.

    Blocks are numbered in the order they open: a text block opens lazily on the first text,
    each tool call opens its own block. ``message_delta`` and ``message_stop`` go out in
    :meth:`finish`, because providers may report usage after the finish reason.
    ``message_start`` carries the upstream's own input count when its stream reported one at
    the start (an Anthropic upstream does), else ``estimate_input`` is called once for a local
    count; the provider's final count follows in ``message_delta``, which the SDK takes over.
    """

    def __init__(self, *, fallback_id: str, model: str, estimate_input: Callable[[], int]) -> None:
        self.id = fallback_id
        self.model = model
        self._estimate_input = estimate_input
        self._start_usage: Usage | None = None
        self._service_tier: str | None = None
        self._blocks = 0
        self._text_block: int | None = None
        self._tool_blocks: dict[int, int] = {}
        self._thinking_blocks: dict[int, int] = {}
        # An Anthropic upstream's blocks of types the contract does not model: its index -> ours.
        self._foreign_blocks: dict[int, int] = {}
        self._open: list[int] = []
        self._usage: Usage | None = None
        self._usage_kept: dict[str, Any] = {}
        self._finish: FinishReason | None = None
        self._stop_sequence: str | None = None

    def _start_block(self, block: dict[str, Any]) -> tuple[int, bytes]:
        index = self._blocks
        self._blocks += 1
        self._open.append(index)
        frame = {"type": "content_block_start", "index": index, "content_block": block}
        return index, sse("content_block_start", frame)

    def _stop_block(self, index: int) -> bytes:
        if index not in self._open:
            return b""
        self._open.remove(index)
        if index == self._text_block:
            self._text_block = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": index})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        frame = {"type": "content_block_delta", "index": index, "delta": delta}
        return sse("content_block_delta", frame)

    def _message_start(self) -> bytes:
        message: dict[str, Any] = {
            "id": message_id(self.id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            **_MESSAGE_NULLS,
            "usage": self._start_counts(),
        }
        return sse("message_start", {"type": "message_start", "message": message})

    def _start_counts(self) -> dict[str, Any]:
        if self._start_usage is not None:
            start = self._start_usage
            counts = {**usage_json(start), "output_tokens": 0, **_USAGE_NULLS}
            if start.cache_creation_5m_input_tokens is not None:
                counts["cache_creation"] = cache_creation_json(start)
            if self._service_tier is not None:
                counts["service_tier"] = _ANSWER_TIERS.get(self._service_tier, self._service_tier)
            return counts
        return {
            "input_tokens": self._estimate_input(),
            "output_tokens": 0,
            "cache_read_input_tokens": None,
            "cache_creation_input_tokens": None,
            **_USAGE_NULLS,
        }

    def encode(self, event: StreamEvent) -> bytes:
        """The SSE bytes for one event (empty when it has no Anthropic counterpart yet)."""
        match event:
            case MessageStart():
                self.id = event.id or self.id
                self.model = event.model or self.model
                self._start_usage = event.usage
                self._service_tier = event.service_tier
                return self._message_start()
            case TextDelta():
                if not event.text:
                    return b""
                head = b""
                if self._text_block is None:
                    # A thinking block before it closes first (Anthropic streams one at a time).
                    closed = self._close_open() if self._thinking_blocks else b""
                    self._text_block, head = self._start_block(
                        {"type": "text", "text": "", "citations": None}
                    )
                    head = closed + head
                delta = {"type": "text_delta", "text": event.text}
                return head + self._delta(self._text_block, delta)
            case ThinkingDelta():
                head, index = self._thinking(event.index)
                delta = {"type": "thinking_delta", "thinking": event.thinking}
                return head + self._delta(index, delta)
            case SignatureDelta():
                head, index = self._thinking(event.index)
                delta = {"type": "signature_delta", "signature": event.signature}
                return head + self._delta(index, delta)
            case RedactedThinking():
                head = self._close_open()
                index, start = self._start_block({"type": "redacted_thinking", "data": event.data})
                return head + start + self._stop_block(index)
            case ToolCallStart():
                head = b"" if self._text_block is None else self._stop_block(self._text_block)
                block = {
                    "type": "tool_use",
                    "id": event.id,
                    "name": event.name,
                    "input": {},
                    "caller": _DIRECT_CALLER,
                }
                index, start = self._start_block(block)
                self._tool_blocks[event.index] = index
                return head + start
            case ToolCallDelta():
                index = self._tool_blocks[event.index]
                return self._delta(
                    index, {"type": "input_json_delta", "partial_json": event.arguments}
                )
            case ToolCallEnd():
                return self._stop_block(self._tool_blocks[event.index])
            case UsageEvent():
                self._usage = event.usage
                kept = event.extensions
                if kept is not None and kept.owner == ANTHROPIC_MESSAGES:
                    self._usage_kept = kept.fields
            case MessageEnd():
                self._finish = event.finish_reason
                self._stop_sequence = event.stop_sequence
            case ErrorEvent():
                return sse("error", error_json(event.error))
            case ExtensionEvent():
                # An Anthropic upstream's own event, as it came, in its place in the stream.
                if event.owner == ANTHROPIC_MESSAGES:
                    if event.event.startswith("content_block_"):
                        return self._kept_block_event(event.event, event.data)
                    return sse(event.event, event.data)
        return b""

    def _kept_block_event(self, name: str, data: dict[str, Any]) -> bytes:
        """A block event the contract does not model, renumbered into this stream's blocks: a
        new block (a server tool's) closes the open ones first, as Anthropic streams one block
        at a time; a delta or stop goes to that block, or (a text block's citations) to the
        block open now."""
        upstream = data.get("index")
        if name == "content_block_start":
            head = self._close_open()
            index = self._blocks
            self._blocks += 1
            self._open.append(index)
            if isinstance(upstream, int):
                self._foreign_blocks[upstream] = index
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "text":
                self._text_block = index  # its text deltas go into it
            return head + sse(name, {**data, "index": index})
        found = self._foreign_blocks.get(upstream) if isinstance(upstream, int) else None
        if found is None:
            if not self._open:
                return b""  # a delta for a block this stream never opened: nothing to join
            found = self._open[-1]
        if name == "content_block_stop":
            if isinstance(upstream, int):
                self._foreign_blocks.pop(upstream, None)
            return self._stop_block(found)
        return sse(name, {**data, "index": found})

    def _close_open(self) -> bytes:
        return b"".join(self._stop_block(index) for index in list(self._open))

    def _thinking(self, part: int) -> tuple[bytes, int]:
        """The block of reasoning part ``part``, opened (after closing the others) if new."""
        index = self._thinking_blocks.get(part)
        if index is not None:
            return b"", index
        head = self._close_open()
        index, start = self._start_block({"type": "thinking", "thinking": "", "signature": ""})
        self._thinking_blocks[part] = index
        return head + start, index

    def finish(self) -> bytes:
        """Close open blocks, then ``message_delta`` (stop reason, usage) and ``message_stop``."""
        out = self._close_open()
        reason = self._finish or ("tool_calls" if self._tool_blocks else "stop")
        counts: dict[str, Any] = (
            usage_json(self._usage)
            if self._usage is not None
            else {
                "input_tokens": None,
                "output_tokens": 0,
                "cache_read_input_tokens": None,
                "cache_creation_input_tokens": None,
            }
        )
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(reason),
                "stop_sequence": self._stop_sequence,
                **_MESSAGE_NULLS,
            },
            "usage": {
                **counts,
                "output_tokens_details": None,
                "server_tool_use": None,
                **self._usage_kept,
            },
        }
        return out + sse("message_delta", delta) + sse("message_stop", {"type": "message_stop"})
