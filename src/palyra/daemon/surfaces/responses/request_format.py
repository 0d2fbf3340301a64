"""An OpenAI ``POST /v1/responses`` body -> this turn's neutral messages and request fields.

Pure: no store, no clock. ``previous_response_id`` is only read here; the handler fetches the
stored chain and hands its messages to :meth:`ResponsesCall.chat_request`, so a chained request
is validated as one whole conversation. Every documented field is either mapped, or refused
with a 400 naming it and saying why (a gateway that accepted and ignored it would change what
the client gets without telling it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from palyra.daemon.surfaces.responses.reasoning_items import reasoning_config, reasoning_part
from palyra.daemon.surfaces.wire_checks import boolean, invalid, json_kind, obj, string
from palyra.model import (
    ChatRequest,
    ContentPart,
    DocumentPart,
    ImagePart,
    Message,
    NamedToolChoice,
    ReasoningPart,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)

# Built-in OpenAI tools: run by OpenAI's Responses service itself, which no other upstream is.
BUILTIN_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_2025_08_26",
        "web_search_preview_2025_03_11",
        "file_search",
        "computer",
        "computer_use_preview",
        "code_interpreter",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "custom",
        "namespace",
        "tool_search",
        "apply_patch",
    }
)

# Fields with no neutral counterpart yet: refused, so the client knows it did not take effect.
_REFUSED: dict[str, str] = {
    "background": "Palyra answers in the foreground only; send background=false or omit it",
    "conversation": "Palyra keeps no conversation objects; chain turns with previous_response_id",
    "prompt": "prompt templates live on OpenAI's platform; send the input itself",
    "context_management": "Palyra does not compact context; omit context_management",
}
# Fields that are harmless at their default value, refused otherwise.
_DEFAULT_ONLY: dict[str, tuple[Any, ...]] = {
    "truncation": (None, "disabled"),
    "max_tool_calls": (None,),
}
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
LOGPROBS_INCLUDE = "message.output_text.logprobs"
_IGNORABLE = frozenset({"stream_options", "include", "prompt_cache_key", "safety_identifier"})
_KNOWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "store",
        "previous_response_id",
        "metadata",
        "user",
        "service_tier",
        "top_logprobs",
    }
)
_MESSAGE_ROLES = {
    "user": Role.USER,
    "system": Role.SYSTEM,
    "developer": Role.DEVELOPER,
    "assistant": Role.ASSISTANT,
}


@dataclass(frozen=True)
class ResponsesCall:
    """One parsed Responses request: this turn's input, the neutral fields, and what the
    Response object must repeat back (``echo``)."""

    model: str
    input: list[Message]
    instructions: str | None
    fields: dict[str, Any]
    echo: dict[str, Any]
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    builtin_tools: list[str] = field(default_factory=list)

    def chat_request(self, history: list[Message] | None = None) -> ChatRequest:
        """The neutral request: instructions, then the stored chain, then this turn's input."""
        messages: list[Message] = []
        if self.instructions:
            messages.append(Message.text(Role.DEVELOPER, self.instructions))
        messages += history or []
        messages += self.input
        if not any(m.role is not Role.DEVELOPER for m in messages):
            raise invalid("input must hold at least one item (a message or a tool output)", "input")
        try:
            return ChatRequest.model_validate(
                {"model": self.model, "messages": messages, "stream": self.stream, **self.fields}
            )
        except (ValidationError, ValueError) as exc:
            raise invalid(_first_error(exc)) from exc


def _first_error(exc: ValidationError | ValueError) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
        message = str(err["msg"]).removeprefix("Value error, ")
        return f"{loc}: {message}" if loc else message
    return str(exc)


def _text(raw: Any, where: str) -> str:
    return string(raw, where)


def _image(part: dict[str, Any], where: str) -> ImagePart:
    if part.get("file_id") is not None:
        raise invalid(
            f"{where}.file_id: Palyra has no Files API; send image_url (a URL or a data URL)",
            f"{where}.file_id",
        )
    url = string(part.get("image_url"), f"{where}.image_url")
    detail = part.get("detail")
    try:
        return ImagePart.from_data_url(url, detail=detail if detail in ("low", "high") else None)
    except (ValueError, ValidationError) as exc:
        raise invalid(f"{where}.image_url: {_first_error(exc)}", f"{where}.image_url") from exc


def _document(part: dict[str, Any], where: str) -> DocumentPart:
    """An ``input_file``: inline ``file_data`` (a data URL, or bare base64 of a PDF), a
    ``file_url`` or a ``file_id`` the upstream holds."""
    filename = part.get("filename")
    fields: dict[str, Any] = {"filename": filename if isinstance(filename, str) else None}
    data = part.get("file_data")
    if data is not None:
        data = string(data, f"{where}.file_data")
        if data.startswith("data:"):
            header, _, payload = data.partition(",")
            fields["media_type"] = header[5:].split(";", 1)[0] or None
            fields["data"] = payload
        else:
            fields["media_type"], fields["data"] = "application/pdf", data
    if part.get("file_url") is not None:
        fields["url"] = string(part["file_url"], f"{where}.file_url")
    if part.get("file_id") is not None:
        fields["file_id"] = string(part["file_id"], f"{where}.file_id")
    try:
        return DocumentPart.model_validate(fields)
    except ValidationError as exc:
        raise invalid(
            f"{where}: {_first_error(exc)} (send one of file_data, file_url, file_id)", where
        ) from exc


def _content(raw: Any, role: Role, where: str) -> list[ContentPart]:
    """A message's content: a string, or ``input_text`` / ``input_image`` parts (``output_text``
    and ``refusal`` in assistant turns echoed back)."""
    if isinstance(raw, str):
        return [TextPart(text=raw)]
    if not isinstance(raw, list):
        raise invalid(
            f"{where} must be a string or an array of content parts, got {json_kind(raw)}", where
        )
    parts: list[ContentPart] = []
    for j, item in enumerate(raw):
        here = f"{where}[{j}]"
        part = obj(item, here)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(TextPart(text=_text(part.get("text"), f"{here}.text")))
        elif kind == "refusal" and role is Role.ASSISTANT:
            parts.append(TextPart(text=_text(part.get("refusal"), f"{here}.refusal")))
        elif kind == "input_image":
            if role is not Role.USER:
                raise invalid(f"{here}: images can only be sent in user messages", here)
            parts.append(_image(part, here))
        elif kind == "input_file":
            if role is not Role.USER:
                raise invalid(f"{here}: files can only be sent in user messages", here)
            parts.append(_document(part, here))
        else:
            raise invalid(
                f"{here} has type {kind!r}; use 'input_text' or 'input_image' "
                "('output_text' in assistant messages)",
                here,
            )
    return parts


def _call_output(raw: Any, where: str) -> str | list[Any]:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        texts = []
        for j, item in enumerate(raw):
            part = obj(item, f"{where}[{j}]")
            if part.get("type") != "input_text":
                raise invalid(
                    f"{where}[{j}] has type {part.get('type')!r}; a function_call_output "
                    "Palyra can carry holds a string or input_text parts",
                    where,
                )
            texts.append(_text(part.get("text"), f"{where}[{j}].text"))
        return "".join(texts)
    raise invalid(f"{where} must be a string or an array of parts, got {json_kind(raw)}", where)


class _Turns:
    """Builds messages item by item: an assistant's text and the function calls after it are
    one assistant turn, as the neutral contract (and both upstream APIs) expect."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def add(self, role: Role, parts: list[ContentPart]) -> None:
        last = self.messages[-1] if self.messages else None
        if (
            role is Role.ASSISTANT
            and last is not None
            and last.role is Role.ASSISTANT
            and (
                any(isinstance(p, ToolCallPart) for p in parts)
                or all(isinstance(p, ReasoningPart) for p in last.content)
            )
        ):
            self.messages[-1] = Message(role=role, content=[*last.content, *parts])
            return
        self.messages.append(Message(role=role, content=parts))


def _item(turns: _Turns, raw: Any, where: str) -> None:
    item = obj(raw, where)
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"
    if kind == "message":
        raw_role = item.get("role")
        role = _MESSAGE_ROLES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            raise invalid(
                f"{where}.role is {item.get('role')!r}; use user, assistant, system or developer",
                f"{where}.role",
            )
        turns.add(role, _content(item.get("content"), role, f"{where}.content"))
    elif kind == "function_call":
        call = ToolCallPart(
            id=string(item.get("call_id"), f"{where}.call_id"),
            name=string(item.get("name"), f"{where}.name"),
            arguments=string(item.get("arguments", "{}"), f"{where}.arguments"),
        )
        turns.add(Role.ASSISTANT, [call])
    elif kind == "function_call_output":
        result = ToolResultPart(
            tool_call_id=string(item.get("call_id"), f"{where}.call_id"),
            content=_call_output(item.get("output"), f"{where}.output"),
        )
        turns.add(Role.TOOL, [result])
    elif kind == "reasoning":
        turns.add(Role.ASSISTANT, [reasoning_part(item, where)])
    elif kind == "item_reference":
        raise invalid(
            f"{where} is an item_reference; send the item itself, or chain the turn with "
            "previous_response_id",
            where,
        )
    else:
        raise invalid(
            f"{where} has type {kind!r}; Palyra accepts message, function_call, "
            "function_call_output and reasoning items",
            f"{where}.type",
        )


def parse_input(raw: Any) -> list[Message]:
    """``input``: a string (one user message) or a list of items."""
    if isinstance(raw, str):
        return [Message.text(Role.USER, raw)]
    if not isinstance(raw, list):
        raise invalid(f"input must be a string or an array of items, got {json_kind(raw)}", "input")
    turns = _Turns()
    for i, item in enumerate(raw):
        _item(turns, item, f"input[{i}]")
    return turns.messages


def _tools(raw: Any) -> tuple[list[ToolSpec], list[dict[str, Any]], list[str]]:
    """Function tools (neutral and as echoed back) and the built-in tool types asked for."""
    if raw is None:
        return [], [], []
    if not isinstance(raw, list):
        raise invalid(f"tools must be an array, got {json_kind(raw)}", "tools")
    specs: list[ToolSpec] = []
    echoed: list[dict[str, Any]] = []
    builtin: list[str] = []
    for i, item in enumerate(raw):
        where = f"tools[{i}]"
        tool = obj(item, where)
        kind = tool.get("type")
        if kind != "function":
            if isinstance(kind, str) and kind in BUILTIN_TOOLS:
                builtin.append(str(kind))
                continue
            raise invalid(f"{where}.type is {kind!r}; use 'function'", f"{where}.type")
        spec: dict[str, Any] = {"name": tool.get("name")}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                spec[key] = tool[key]
        try:
            specs.append(ToolSpec.model_validate(spec))
        except ValidationError as exc:
            raise invalid(f"{where}: {_first_error(exc)}", where) from exc
        echoed.append(
            {
                "type": "function",
                "name": tool.get("name"),
                "description": tool.get("description"),
                "parameters": tool.get("parameters"),
                "strict": tool.get("strict"),
            }
        )
    return specs, echoed, builtin


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None or raw in ("auto", "none", "required"):
        return raw  # type: ignore[no-any-return]
    if isinstance(raw, dict) and raw.get("type") == "function":
        return NamedToolChoice(name=string(raw.get("name"), "tool_choice.name"))
    raise invalid(
        "tool_choice must be 'auto', 'none', 'required' or "
        '{"type": "function", "name": ...} (allowed_tools and built-in tool choices are not '
        "carried)",
        "tool_choice",
    )


def _text_format(raw: Any) -> tuple[ResponseFormat | None, dict[str, Any]]:
    """``text.format`` as a neutral response format, and the ``text`` object echoed back."""
    if raw is None:
        return None, {"format": {"type": "text"}}
    text = obj(raw, "text")
    if text.get("verbosity") not in (None, "medium"):
        raise invalid(
            f"text.verbosity={text['verbosity']!r} has no counterpart in Palyra's contract; "
            "omit it",
            "text.verbosity",
        )
    fmt = text.get("format")
    if fmt is None:
        return None, {"format": {"type": "text"}}
    fmt = obj(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None, {"format": {"type": "text"}}
    if kind == "json_object":
        return ResponseFormat(type="json_object"), {"format": {"type": "json_object"}}
    if kind == "json_schema":
        name = string(fmt.get("name"), "text.format.name")
        schema = obj(fmt.get("schema"), "text.format.schema")
        echoed = {"format": {k: v for k, v in fmt.items() if v is not None}}
        strict = fmt.get("strict")
        neutral = ResponseFormat(
            type="json_schema",
            schema_name=name,
            json_schema=schema,
            strict=None if strict is None else boolean(strict, "text.format.strict"),
        )
        return neutral, echoed
    raise invalid(
        f"text.format.type is {kind!r}; use 'text', 'json_object' or 'json_schema'",
        "text.format.type",
    )


def _check_fields(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key in _KNOWN or key in _IGNORABLE:
            continue
        if key in _REFUSED:
            if value not in (None, False):
                raise invalid(f"{key}: {_REFUSED[key]}", key)
            continue
        if key in _DEFAULT_ONLY:
            if value not in _DEFAULT_ONLY[key]:
                raise invalid(
                    f"{key}={value!r} has no counterpart in Palyra's contract yet; omit it",
                    key,
                )
            continue
        raise invalid(f"unknown parameter {key!r} for POST /v1/responses", key)
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(v, str) for v in include):
        raise invalid("include must be an array of strings", "include")


def _logprobs(body: dict[str, Any]) -> dict[str, Any]:
    """``include: ["message.output_text.logprobs"]`` and ``top_logprobs`` as the neutral
    ``logprobs`` / ``top_logprobs`` (asking for alternatives asks for the logprobs too)."""
    top = body.get("top_logprobs")
    if top is not None and (type(top) is not int or not 0 <= top <= 20):
        raise invalid(f"top_logprobs must be an integer from 0 to 20, got {top!r}", "top_logprobs")
    wanted = LOGPROBS_INCLUDE in (body.get("include") or []) or bool(top)
    if not wanted:
        return {}
    return {"logprobs": True, "top_logprobs": top}


def _service_tier(raw: Any) -> str | None:
    if raw is not None and raw not in SERVICE_TIERS:
        raise invalid(
            f"service_tier is {raw!r}; use one of {', '.join(SERVICE_TIERS)}", "service_tier"
        )
    return raw  # type: ignore[no-any-return]


def parse_responses_request(data: Any, headers: dict[str, str] | None = None) -> ResponsesCall:
    """A Responses body as a :class:`ResponsesCall`, or a 400 naming the field; ``headers`` are
    the client's headers an upstream may be given (see ``palyra.model.forwarding``)."""
    body = obj(data, "the request body")
    _check_fields(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model must be a non-empty string naming a configured model", "model")
    if "input" not in body and body.get("previous_response_id") is None:
        raise invalid("input is required (a string, or an array of input items)", "input")
    messages = parse_input(body.get("input", []))
    instructions = body.get("instructions")
    if instructions is not None:
        instructions = string(instructions, "instructions")
    specs, echoed_tools, builtin = _tools(body.get("tools"))
    response_format, echoed_text = _text_format(body.get("text"))
    reasoning, neutral_reasoning = reasoning_config(body.get("reasoning"))
    store = boolean(body.get("store"), "store", default=True)
    stream = boolean(body.get("stream"), "stream")
    previous = body.get("previous_response_id")
    if previous is not None:
        previous = string(previous, "previous_response_id")
    metadata = body.get("metadata")
    if metadata is not None:
        obj(metadata, "metadata")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        parallel = boolean(parallel, "parallel_tool_calls")
    tool_choice = body.get("tool_choice")
    fields: dict[str, Any] = {
        "tool_choice": _tool_choice(tool_choice),
        "parallel_tool_calls": parallel,
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "response_format": response_format,
        "reasoning": neutral_reasoning,
        "user": body.get("user"),
        "service_tier": _service_tier(body.get("service_tier")),
        **_logprobs(body),
    }
    if specs:
        fields["tools"] = specs
    if metadata:
        fields["metadata"] = metadata
    if headers:
        fields["headers"] = headers
    echo: dict[str, Any] = {
        "instructions": instructions,
        "tools": echoed_tools,
        "tool_choice": tool_choice if tool_choice is not None else "auto",
        "parallel_tool_calls": parallel if parallel is not None else True,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": metadata or {},
        "text": echoed_text,
        "reasoning": reasoning,
        "previous_response_id": previous,
        "store": store,
        "truncation": "disabled",
    }
    if body.get("user") is not None:
        echo["user"] = body["user"]
    if fields["service_tier"] is not None:
        echo["service_tier"] = fields["service_tier"]
    if body.get("top_logprobs") is not None:
        echo["top_logprobs"] = body["top_logprobs"]
    return ResponsesCall(
        model=model,
        input=messages,
        instructions=instructions,
        fields=fields,
        echo=echo,
        stream=stream,
        store=store,
        previous_response_id=previous,
        builtin_tools=builtin,
    )
