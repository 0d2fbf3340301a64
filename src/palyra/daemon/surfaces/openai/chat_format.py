"""The OpenAI Chat Completions wire format at our edge, as pure functions on plain data.

Request JSON -> neutral ``ChatRequest``; neutral ``ChatResponse`` -> ``chat.completion`` JSON;
neutral stream events -> ``chat.completion.chunk`` SSE bytes; ``ErrorEnvelope`` -> OpenAI error JSON.
Every documented request parameter has a neutral field; how each one reaches an upstream of
another API (mapped, dropped by a rule, or refused) is the README's field table.
Files and reasoning (``reasoning_content``, ``thinking_blocks``) are in ``content_parts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from palyra.daemon.surfaces.openai.content_parts import (
    add_reasoning,
    assistant_reasoning,
    file_part,
)
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
    FailureClass,
    FinishReason,
    ImagePart,
    Logprobs,
    Message,
    MessageEnd,
    MessageStart,
    NamedToolChoice,
    RedactedThinking,
    ResponseFormat,
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
from palyra.model.extensions import OPENAI_CHAT, Extensions, unknown_fields
from palyra.providers.openai.response import REASONING_KEYS

DONE = b"data: [DONE]\n\n"

_ERROR_TYPES: dict[FailureClass, str] = {
    FailureClass.AUTH_INVALID: "authentication_error",
    FailureClass.AUTH_EXPIRED: "authentication_error",
    FailureClass.PERMISSION_DENIED: "permission_error",
    FailureClass.RATE_LIMITED: "rate_limit_error",
    FailureClass.QUOTA_EXHAUSTED: "insufficient_quota",
    FailureClass.CONTEXT_TOO_LONG: "invalid_request_error",
    FailureClass.INVALID_REQUEST: "invalid_request_error",
    FailureClass.CONTENT_POLICY: "invalid_request_error",
    FailureClass.NOT_FOUND: "invalid_request_error",
    FailureClass.UNSUPPORTED_CAPABILITY: "invalid_request_error",
}

# ``error.code`` when the envelope has no specific one: OpenAI's own code where OpenAI has one
# for the class, null where OpenAI sends null (a plain bad request, an unknown route), and
# otherwise (absent here) Palyra's class name for what only a gateway meets: ``timeout``,
# ``connection``, ``circuit_open``, ``upstream_unavailable``, ``stream_interrupted``, ...
_DEFAULT_CODES: dict[FailureClass, str | None] = {
    FailureClass.AUTH_INVALID: "invalid_api_key",
    FailureClass.AUTH_EXPIRED: "invalid_api_key",
    FailureClass.PERMISSION_DENIED: None,
    FailureClass.RATE_LIMITED: "rate_limit_exceeded",
    FailureClass.QUOTA_EXHAUSTED: "insufficient_quota",
    FailureClass.CONTEXT_TOO_LONG: "context_length_exceeded",
    FailureClass.INVALID_REQUEST: None,
    FailureClass.CONTENT_POLICY: "content_policy_violation",
    FailureClass.NOT_FOUND: None,
    FailureClass.UNSUPPORTED_CAPABILITY: None,
}

# Error *types* of the OpenAI and Anthropic APIs (an upstream sends them beside, or instead of,
# a code): never passed on as a code, where they would read as one more spelling of the type.
_TYPE_NAMES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "billing_error",
        "timeout_error",
        "api_error",
        "overloaded_error",
        "server_error",
        "requests",
        "tokens",
    }
)

# Neutral field names that differ from the OpenAI names a client sent.
_WIRE_NAMES = {"max_output_tokens": "max_tokens"}


@dataclass(frozen=True, slots=True)
class ParsedChat:
    """A chat request plus the OpenAI-only streaming option that has no neutral field."""

    request: ChatRequest
    include_usage: bool = False
    # The output limit's name as the client sent it, for errors about it.
    output_field: str = "max_tokens"


def _text_only(content: Any, where: str, *, allow_refusal: bool = False) -> list[ContentPart]:
    """Content that may only hold text: a string, null, or ``text`` parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not isinstance(content, list):
        raise invalid(
            f"{where} must be a string or an array of parts, got {json_kind(content)}", where
        )
    parts: list[ContentPart] = []
    for j, raw in enumerate(content):
        part = obj(raw, f"{where}[{j}]")
        kind = part.get("type")
        if kind == "text":
            parts.append(_text(part, f"{where}[{j}]"))
        elif kind == "refusal" and allow_refusal:
            parts.append(TextPart(text=string(part.get("refusal"), f"{where}[{j}].refusal")))
        else:
            raise invalid(
                f"{where}[{j}] has type {kind!r}; only 'text' parts are allowed here", where
            )
    return parts


# Each part type's fields the contract models; any other travels in the part's extensions.
_TEXT_KEYS = frozenset({"type", "text"})
_IMAGE_KEYS = frozenset({"type", "image_url"})
_FILE_KEYS = frozenset({"type", "file"})
_CALL_KEYS = frozenset({"id", "type", "function"})
_TOOL_KEYS = frozenset({"type", "function"})
_FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})


def _text(part: dict[str, Any], where: str) -> TextPart:
    text = string(part.get("text"), f"{where}.text")
    if part.keys() <= _TEXT_KEYS:  # the usual part
        return TextPart(text=text)
    return TextPart(text=text, extensions=unknown_fields(part, _TEXT_KEYS, OPENAI_CHAT))


def _user_content(content: Any, where: str) -> list[ContentPart]:
    if not isinstance(content, list):
        return _text_only(content, where)
    parts: list[ContentPart] = []
    for j, raw in enumerate(content):
        part = obj(raw, f"{where}[{j}]")
        kind = part.get("type")
        if kind == "text":
            parts.append(_text(part, f"{where}[{j}]"))
        elif kind == "image_url":
            image = obj(part.get("image_url"), f"{where}[{j}].image_url")
            url = string(image.get("url"), f"{where}[{j}].image_url.url")
            try:
                image_part = ImagePart.from_data_url(url, detail=image.get("detail"))
            except (ValueError, ValidationError) as exc:
                raise invalid(f"{where}[{j}].image_url: {_first_error(exc)}", where) from exc
            extensions = unknown_fields(part, _IMAGE_KEYS, OPENAI_CHAT)
            if extensions is not None:
                image_part = image_part.model_copy(update={"extensions": extensions})
            parts.append(image_part)
        elif kind == "file":
            file = file_part(part, f"{where}[{j}]")
            extensions = unknown_fields(part, _FILE_KEYS, OPENAI_CHAT)
            if extensions is not None:
                file = file.model_copy(update={"extensions": extensions})
            parts.append(file)
        elif isinstance(kind, str):
            # input_audio, or a part type newer than Palyra: kept whole for an OpenAI upstream
            # (a model of another API refuses it, naming it: it cannot read it).
            parts.append(ExtensionPart.model_construct(owner=OPENAI_CHAT, block=part))
        else:
            raise invalid(f"{where}[{j}].type must be a string, got {json_kind(kind)}", where)
    return parts


def _tool_call(raw: Any, where: str) -> ToolCallPart:
    call = obj(raw, where)
    if call.get("type", "function") != "function":
        raise invalid(f"{where}.type is {call.get('type')!r}; only 'function' is supported", where)
    function = obj(call.get("function"), f"{where}.function")
    return ToolCallPart(
        id=string(call.get("id"), f"{where}.id"),
        name=string(function.get("name"), f"{where}.function.name"),
        arguments=string(function.get("arguments", "{}"), f"{where}.function.arguments"),
        extensions=unknown_fields(call, _CALL_KEYS, OPENAI_CHAT),
    )


# Roles whose plain string content is one text part and nothing else (an assistant turn only
# without tool calls, checked below).
_PLAIN_TEXT_ROLES = frozenset({"system", "developer", "user", "assistant"})
# A message's fields the contract models; any other travels as the message's extensions.
_MESSAGE_KEYS = frozenset(
    {
        "role",
        "content",
        "name",
        "tool_calls",
        "tool_call_id",
        "thinking_blocks",
        "reasoning_content",
    }
)
# The body's fields the contract models; any other travels as the request's extensions.
BODY_KEYS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "response_format",
        "stream",
        "stream_options",
        "user",
        "stop",
        "metadata",
        "logit_bias",
        "prediction",
        "reasoning_effort",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "n",
        "service_tier",
        "store",
    }
)


def _message(raw: Any, i: int) -> Message | dict[str, Any]:
    """One OpenAI message as a neutral ``Message``, or (for the common plain-text turn) as the
    dict ``ChatRequest`` validation turns into the same ``Message``: pydantic builds nested models
    in one pass far more cheaply than one model at a time from Python."""
    where = f"messages[{i}]"
    msg = obj(raw, where)
    role = msg.get("role")
    name = msg.get("name")
    if not isinstance(name, str):
        name = None
    content = msg.get("content")
    extensions = unknown_fields(msg, _MESSAGE_KEYS, OPENAI_CHAT)
    if extensions is not None:
        return _with_extensions(_message_of(msg, i, where, role, name, content), extensions)
    return _message_of(msg, i, where, role, name, content)


def _with_extensions(
    message: Message | dict[str, Any], extensions: Extensions
) -> Message | dict[str, Any]:
    if isinstance(message, dict):
        return {**message, "extensions": extensions}
    return message.model_copy(update={"extensions": extensions})


def _message_of(
    msg: dict[str, Any], i: int, where: str, role: Any, name: str | None, content: Any
) -> Message | dict[str, Any]:
    if (
        type(content) is str
        and role in _PLAIN_TEXT_ROLES
        and (
            role != "assistant"
            or not (msg.get("tool_calls") or "thinking_blocks" in msg or "reasoning_content" in msg)
        )
    ):
        return {"role": role, "content": [{"type": "text", "text": content}], "name": name}
    if role in ("system", "developer"):
        parts = _text_only(content, f"{where}.content")
    elif role == "user":
        parts = _user_content(content, f"{where}.content")
    elif role == "assistant":
        parts = _text_only(content, f"{where}.content", allow_refusal=True)
        if "thinking_blocks" in msg or "reasoning_content" in msg:
            parts = [*assistant_reasoning(msg, where), *parts]
        calls = msg.get("tool_calls") or []
        if not isinstance(calls, list):
            raise invalid(f"{where}.tool_calls must be an array", where)
        parts += [_tool_call(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(calls)]
    elif role == "tool":
        text = "".join(
            p.text for p in _text_only(content, f"{where}.content") if isinstance(p, TextPart)
        )
        call_id = string(msg.get("tool_call_id"), f"{where}.tool_call_id")
        parts = [ToolResultPart(tool_call_id=call_id, content=text)]
    else:
        raise invalid(
            f"{where}.role is {role!r}; use one of system, developer, user, assistant, tool",
            where,
        )
    # Built without a second validation: the role is one of the five checked above, every part
    # was validated as it was built, each kind only under the role that may hold it (tool calls
    # for assistant, tool results for tool, images for user), and ``name`` is a string or None.
    # Every field given, so model_construct resolves no default (a deep copy each). Content
    # sent as a list of parts goes on as a list to an upstream of the same API.
    if type(content) is list and role != "tool":
        return Message.model_construct(
            {"role", "content", "name", "content_list"},
            role=Role(role),
            content=parts,
            name=name,
            content_list=True,
            extensions=None,
        )
    return Message.model_construct(
        {"role", "content", "name"},
        role=Role(role),
        content=parts,
        name=name,
        content_list=False,
        extensions=None,
    )


def _tool(raw: Any, i: int) -> ToolSpec:
    where = f"tools[{i}]"
    tool = obj(raw, where)
    if tool.get("type") != "function":
        raise invalid(f"{where}.type is {tool.get('type')!r}; only 'function' tools are supported")
    function = obj(tool.get("function"), f"{where}.function")
    spec: dict[str, Any] = {"name": function.get("name")}
    for key in ("description", "parameters", "strict"):
        if function.get(key) is not None:
            spec[key] = function[key]
    if not (tool.keys() <= _TOOL_KEYS and function.keys() <= _FUNCTION_KEYS):
        # Fields the contract does not model, for an OpenAI upstream: the tool's own, and the
        # function's under "function" (see the payload builder).
        fields = {k: v for k, v in tool.items() if k not in _TOOL_KEYS}
        inner = {k: v for k, v in function.items() if k not in _FUNCTION_KEYS}
        if inner:
            fields["function"] = inner
        spec["extensions"] = Extensions(owner=OPENAI_CHAT, fields=fields)
    try:
        return ToolSpec.model_validate(spec)
    except ValidationError as exc:
        raise invalid(f"{where}.function.{_first_error(exc)}", where) from None


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None or raw in ("auto", "none", "required"):
        return raw  # type: ignore[no-any-return]
    if isinstance(raw, dict) and raw.get("type") == "function":
        function = obj(raw.get("function"), "tool_choice.function")
        return NamedToolChoice(name=string(function.get("name"), "tool_choice.function.name"))
    raise invalid(
        "tool_choice must be 'auto', 'none', 'required' or "
        '{"type": "function", "function": {"name": ...}}',
        "tool_choice",
    )


def _response_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    fmt = obj(raw, "response_format")
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = obj(fmt.get("json_schema"), "response_format.json_schema")
        schema = spec.get("schema")
        where = "response_format.json_schema"
        try:
            return ResponseFormat(
                type="json_schema",
                schema_name=spec.get("name"),
                json_schema={} if schema is None else obj(schema, f"{where}.schema"),
                strict=spec.get("strict"),
            )
        except ValidationError as exc:
            wire = {"schema_name": "name", "json_schema": "schema"}
            err = exc.errors()[0]
            field = ".".join(wire.get(str(p), str(p)) for p in err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            raise invalid(f"{where}.{field}: {message}", f"{where}.{field}") from None
    if kind in ("text", "json_object"):
        return ResponseFormat(type=kind)
    raise invalid(
        f"response_format.type is {kind!r}; use 'text', 'json_object' or 'json_schema'",
        "response_format",
    )


def _stop(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return raw
    raise invalid("stop must be a string or an array of strings", "stop")


def _prediction(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    prediction = obj(raw, "prediction")
    if prediction.get("type") != "content":
        raise invalid(
            f"prediction.type is {prediction.get('type')!r}; use 'content'", "prediction.type"
        )
    content = prediction.get("content")
    if isinstance(content, list):
        content = _text_only(content, "prediction.content")
    elif not isinstance(content, str):
        raise invalid(
            "prediction.content must be a string or an array of text parts", "prediction.content"
        )
    return {"type": "content", "content": content}


# Optional parameters read as they are (the neutral model checks their types and ranges).
_PLAIN_PARAMS = (
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "n",
    "service_tier",
    "store",
)


def _first_error(exc: ValueError | ValidationError, names: Mapping[str, str] = _WIRE_NAMES) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(names.get(str(p), str(p)) for p in err["loc"])
        loc = loc.replace("reasoning.effort", "reasoning_effort")
        message = str(err["msg"]).removeprefix("Value error, ")
        return f"{loc}: {message}" if loc else message
    return str(exc)


def parse_chat_request(data: Any, headers: Mapping[str, str] | None = None) -> ParsedChat:
    """An OpenAI ``/v1/chat/completions`` body as a neutral request, or a 400 naming the field;
    ``headers`` are the client's headers a provider may pass on (``openai-beta``, ...)."""
    body = obj(data, "the request body")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty array", "messages")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid("tools must be an array", "tools")
    options = body.get("stream_options")
    options = {} if options is None else obj(options, "stream_options")
    max_tokens = body.get("max_completion_tokens")
    output_field = "max_tokens" if max_tokens is None else "max_completion_tokens"
    fields: dict[str, Any] = {
        "model": body.get("model"),
        "messages": [_message(m, i) for i, m in enumerate(messages)],
        "tool_choice": _tool_choice(body.get("tool_choice")),
        "parallel_tool_calls": body.get("parallel_tool_calls"),
        "max_output_tokens": body.get("max_tokens") if max_tokens is None else max_tokens,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "response_format": _response_format(body.get("response_format")),
        "stream": boolean(body.get("stream"), "stream"),
        "user": body.get("user"),
    }
    # Empty collections are the fields' defaults: left out, there is nothing to validate.
    if tools:
        fields["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    stop = _stop(body.get("stop"))
    if stop:
        fields["stop"] = stop
    top_k = body.get("top_k")  # not OpenAI's; OpenAI-compatible servers read it
    if top_k is not None:
        fields["top_k"] = top_k
    metadata = body.get("metadata")
    if metadata:
        fields["metadata"] = metadata
    for key in _PLAIN_PARAMS:
        value = body.get(key)
        if value is not None:
            fields[key] = value
    bias = body.get("logit_bias")
    if bias:
        fields["logit_bias"] = bias
    if "prediction" in body:
        fields["prediction"] = _prediction(body["prediction"])
    if headers:
        fields["headers"] = headers
    extensions = unknown_fields(body, BODY_KEYS, OPENAI_CHAT)
    if extensions is not None:
        fields["extensions"] = extensions
    effort = body.get("reasoning_effort")
    if effort is not None:
        fields["reasoning"] = {"effort": effort}
    try:
        request = ChatRequest.model_validate(fields)
    except (ValidationError, ValueError) as exc:
        raise invalid(_first_error(exc, {"max_output_tokens": output_field})) from exc
    include_usage = boolean(options.get("include_usage"), "stream_options.include_usage")
    return ParsedChat(request=request, include_usage=include_usage, output_field=output_field)


def parse_chat_body(raw: bytes, headers: Mapping[str, str] | None = None) -> ParsedChat:
    """Decode and parse a request body; malformed JSON is a 400 like any other bad field."""
    return parse_chat_request(load_json(raw), headers)


def _finish(reason: FinishReason) -> str:
    return "stop" if reason == "error" or reason == "stop_sequence" else reason


def usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI usage; ``input_tokens`` is taken to include cached input, as OpenAI counts it."""
    prompt, completion = usage.input_tokens, usage.output_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _call_json(index: int | None, call: ToolCallPart) -> dict[str, Any]:
    out: dict[str, Any] = {} if index is None else {"index": index}
    out.update(
        id=call.id, type="function", function={"name": call.name, "arguments": call.arguments}
    )
    return out


def logprobs_json(logprobs: Logprobs | None) -> dict[str, Any] | None:
    """OpenAI's ``logprobs`` object of a choice (``null`` when the request did not ask)."""
    if logprobs is None:
        return None
    return logprobs.model_dump(mode="json")


def chat_completion(response: ChatResponse, *, created: int) -> dict[str, Any]:
    """A neutral answer as an OpenAI ``chat.completion`` object."""
    content, calls = response.content, response.tool_calls  # each field read once
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content if content or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [_call_json(None, c) for c in calls]
    own = response.message_extensions
    if own is not None and own.owner != OPENAI_CHAT:
        own = None
    if response.reasoning and not (own is not None and _carries_reasoning(own)):
        add_reasoning(message, response.reasoning)
    answered_at = response.created
    body: dict[str, Any] = {
        "id": response.id,
        "object": "chat.completion",
        "created": answered_at if answered_at is not None else created,
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish(response.finish_reason),
                "logprobs": logprobs_json(response.logprobs),
            }
        ],
        "usage": usage_json(response.usage),
    }
    kept = response.usage_extensions
    if kept is not None and kept.owner == OPENAI_CHAT:
        body["usage"] = kept.fields["usage"]  # an OpenAI upstream's own usage, as it sent it
    fingerprint = response.system_fingerprint
    if fingerprint is not None:  # a string when present, never null (OpenAPI)
        body["system_fingerprint"] = fingerprint
    tier = response.service_tier
    if tier is not None:
        body["service_tier"] = tier
    extensions = response.extensions
    if extensions is not None and extensions.owner == OPENAI_CHAT:
        body.update(extensions.fields)
    if own is not None:
        message.update(own.fields)
    extensions = response.choice_extensions
    if extensions is not None and extensions.owner == OPENAI_CHAT:
        body["choices"][0].update(extensions.fields)
    extensions = response.other_choices
    if extensions is not None and extensions.owner == OPENAI_CHAT:
        body["choices"] += extensions.fields["choices"]
    return body


def _carries_reasoning(extensions: Extensions) -> bool:
    """Whether an OpenAI-compatible upstream's message carried its reasoning in its own fields,
    which then reach the client as they came, in place of Palyra's rendering of them."""
    fields = extensions.fields
    return any(key in fields for key in REASONING_KEYS)


def error_code(envelope: ErrorEnvelope) -> str | None:
    """OpenAI's ``error.code``: the envelope's specific code, else the class's (see
    ``_DEFAULT_CODES``)."""
    code = envelope.code
    if code and code not in _TYPE_NAMES:
        return code
    failure = envelope.failure_class
    return _DEFAULT_CODES.get(failure, failure.value)


def error_json(envelope: ErrorEnvelope) -> dict[str, Any]:
    """The OpenAI error object for an envelope."""
    return {
        "error": {
            "message": envelope.message,
            "type": _ERROR_TYPES.get(envelope.failure_class, "server_error"),
            "param": envelope.param,
            "code": error_code(envelope),
        }
    }


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class ChunkEncoder:
    """Turns neutral events into ``chat.completion.chunk`` SSE frames, one call per event.

    Holds only what later chunks repeat (id, model, created) and the usage to send at the end.
    """

    def __init__(self, *, fallback_id: str, model: str, created: int, include_usage: bool):
        self.id = fallback_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self._usage: Usage | None = None
        self.service_tier: str | None = None
        self.system_fingerprint: str | None = None
        self._thinking: dict[int, list[str]] = {}
        # An OpenAI upstream's chunk fields the contract does not model, waiting for the next
        # chunk written (see ``ExtensionEvent``); and whether its reasoning comes in its own
        # fields, as it sent them (Palyra's rendering of that reasoning then stays out).
        self._kept: dict[str, Any] | None = None
        self._usage_kept: dict[str, Any] | None = None
        self._raw_reasoning = False

    def _chunk(
        self,
        delta: dict[str, Any] | None,
        finish: str | None = None,
        usage: Usage | None = None,
        logprobs: Logprobs | None = None,
    ) -> bytes:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": []
            if delta is None
            else [
                {
                    "index": 0,
                    "delta": delta,
                    "finish_reason": finish,
                    "logprobs": logprobs_json(logprobs),
                }
            ],
        }
        if self.service_tier is not None:
            payload["service_tier"] = self.service_tier
        if self.system_fingerprint is not None:
            payload["system_fingerprint"] = self.system_fingerprint
        if usage is not None:
            payload["usage"] = usage_json(usage) if self._usage_kept is None else self._usage_kept
        if self._kept is not None:
            self._merge_kept(payload)
        return sse(payload)

    def _merge_kept(self, payload: dict[str, Any]) -> None:
        """Write the waiting upstream fields into ``payload``: the chunk's own at the top, the
        first choice's and its delta's into that choice, the other choices after it."""
        kept, self._kept = self._kept or {}, None
        payload.update(kept.get("chunk", ()))
        choices: list[dict[str, Any]] = payload["choices"]
        if "choice" in kept or "delta" in kept:
            if not choices:
                choices.append({"index": 0, "delta": {}})
            choices[0].update(kept.get("choice", ()))
            choices[0]["delta"].update(kept.get("delta", ()))
        choices += kept.get("choices", ())

    def _flush_kept(self) -> bytes:
        """The waiting upstream fields as a chunk of their own (the chunk that brought them
        gave no other frame: an other choice's delta, a delta Palyra does not render)."""
        return b"" if self._kept is None else self._chunk(None)

    def encode(self, event: StreamEvent) -> bytes:
        """The SSE bytes for one event (empty when the event has no OpenAI counterpart)."""
        match event:
            case MessageStart():
                self.id = event.id or self.id
                self.model = event.model or self.model
                if event.created is not None:
                    self.created = event.created
                self.service_tier = event.service_tier
                self.system_fingerprint = event.system_fingerprint
                return self._chunk({"role": "assistant", "content": ""})
            case TextDelta():
                if event.logprobs is not None:
                    return self._chunk({"content": event.text}, logprobs=event.logprobs)
                return self._chunk({"content": event.text}) if event.text else b""
            case ThinkingDelta():
                if self._raw_reasoning:
                    return b""
                self._thinking.setdefault(event.index, []).append(event.thinking)
                return self._chunk({"reasoning_content": event.thinking})
            case SignatureDelta():
                if self._raw_reasoning:
                    return b""
                # The whole signed block once its signature arrives: what a client sends back.
                text = "".join(self._thinking.get(event.index, ()))
                block = {"type": "thinking", "thinking": text, "signature": event.signature}
                return self._chunk({"thinking_blocks": [block]})
            case RedactedThinking():
                if self._raw_reasoning:
                    return b""
                block = {"type": "redacted_thinking", "data": event.data}
                return self._chunk({"thinking_blocks": [block]})
            case ExtensionEvent():
                if event.owner != OPENAI_CHAT:
                    return b""
                out = self._flush_kept()
                self._kept = event.data
                delta = event.data.get("delta")
                if delta and any(key in delta for key in REASONING_KEYS):
                    self._raw_reasoning = True
                return out
            case ToolCallStart():
                call = ToolCallPart(id=event.id, name=event.name, arguments="")
                return self._chunk({"tool_calls": [_call_json(event.index, call)]})
            case ToolCallDelta():
                fragment = {"index": event.index, "function": {"arguments": event.arguments}}
                return self._chunk({"tool_calls": [fragment]})
            case UsageEvent():
                self._usage = event.usage
                kept = event.extensions
                if kept is not None and kept.owner == OPENAI_CHAT:
                    self._usage_kept = kept.fields["usage"]
                return b""
            case MessageEnd():
                return self._chunk({}, _finish(event.finish_reason))
            case ErrorEvent():
                return sse(error_json(event.error))
            case ToolCallEnd():
                return b""
        return b""

    def finish(self) -> bytes:
        """The usage chunk (only when the client asked for it) and ``[DONE]``."""
        if self.include_usage:
            return self._chunk(None, usage=self._usage or Usage(source="estimated")) + DONE
        return self._flush_kept() + DONE
