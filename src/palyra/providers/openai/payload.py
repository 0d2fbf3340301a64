"""Neutral requests -> OpenAI wire payloads (Chat Completions, embeddings, transcription form).

Content Chat Completions has no place for, by rule (README, "Field mapping"): reasoning in
assistant history is left out (Chat Completions takes no reasoning input); cache markers are left
out (OpenAI caches prompt prefixes on its own); a document becomes a ``file`` part (inline PDF
data or an OpenAI file id) or, plain text, a text part; a document by URL or a file id from
another vendor's store is refused, as is ``top_k`` unless the server reads it (quirks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from palyra.model import (
    ChatRequest,
    DocumentPart,
    EmbeddingRequest,
    ExtensionPart,
    Extensions,
    FailureClass,
    ImagePart,
    Message,
    NamedToolChoice,
    PalyraError,
    Prediction,
    ReasoningConfig,
    ReasoningEffort,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
    TranscriptionRequest,
)
from palyra.model.extensions import OPENAI_CHAT, refuse_unmapped
from palyra.model.reasoning import DEFAULT_EFFORT_BUDGETS, effort_for_budget
from palyra.model.requests import OPTION_FIELDS
from palyra.providers.openai.quirks import OpenAIQuirks

DEFAULT_SCHEMA_NAME = "response"
TOOL_ERROR_PREFIX = "Error: "

_DEFAULT_QUIRKS = OpenAIQuirks()


def _own(wire: dict[str, Any], extensions: Extensions | None) -> dict[str, Any]:
    """``wire`` with its OpenAI extensions (fields the contract does not model) written back as
    sent; another API's are left out by rule (they are that API's own options)."""
    if extensions is not None and extensions.owner == OPENAI_CHAT:
        wire.update(extensions.fields)
    return wire


def _text_part(part: TextPart) -> dict[str, Any]:
    return _own({"type": "text", "text": part.text}, part.extensions)


def _image_part(part: ImagePart) -> dict[str, Any]:
    image: dict[str, Any] = {"url": part.as_url()}
    if part.detail is not None:
        image["detail"] = part.detail
    return _own({"type": "image_url", "image_url": image}, part.extensions)


def _plain(part: TextPart) -> bool:
    """Whether a text part can go as a plain string: it has no OpenAI fields of its own."""
    extensions = part.extensions
    return extensions is None or extensions.owner != OPENAI_CHAT


def _foreign_part(part: ExtensionPart) -> PalyraError:
    kind = part.block.get("type")
    return PalyraError.of(
        FailureClass.UNSUPPORTED_CAPABILITY,
        f"messages: a content block of type {kind!r} from the {part.owner} API has no "
        "counterpart in OpenAI Chat Completions, and the model would answer without it; remove "
        f"it, or route to a model of the {part.owner} API",
        param="messages",
        provider="openai",
    )


def _invalid(message: str, param: str = "messages") -> PalyraError:
    return PalyraError.of(FailureClass.INVALID_REQUEST, message, param=param, provider="openai")


def _document_part(doc: DocumentPart) -> dict[str, Any]:
    """A document as a ``file`` part, or (plain text) as a text part with its title above."""
    if doc.text is not None:
        head = "\n".join(t for t in (doc.title, doc.context) if t)
        return {"type": "text", "text": f"{head}\n\n{doc.text}" if head else doc.text}
    if doc.url is not None:
        raise _invalid(
            f"a document by URL ({doc.url}) cannot be read through OpenAI Chat Completions, "
            "which takes files inline or by OpenAI file id; send the document as base64 data"
        )
    if doc.file_id is not None:
        if not doc.file_id.startswith("file-"):
            raise _invalid(
                f"document file id {doc.file_id!r} is not an OpenAI file id (file-...), so "
                "OpenAI cannot read it; send the document's content inline instead"
            )
        return {"type": "file", "file": {"file_id": doc.file_id}}
    filename = doc.filename or doc.title or "document.pdf"
    data = f"data:{doc.media_type};base64,{doc.data}"
    return {"type": "file", "file": {"filename": filename, "file_data": data}}


def _user_part(part: TextPart | ImagePart | DocumentPart | ExtensionPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return _text_part(part)
    if isinstance(part, ImagePart):
        return _image_part(part)
    if isinstance(part, ExtensionPart):
        if part.owner != OPENAI_CHAT:
            raise _foreign_part(part)
        return dict(part.block)
    return _own(_document_part(part), part.extensions)


def _content(
    parts: list[TextPart | ImagePart | DocumentPart | ExtensionPart], as_list: bool = False
) -> str | list[dict[str, Any]]:
    """One plain text part collapses to a plain string, the form every compatible server reads,
    unless the client sent a list (``as_list``)."""
    if not parts:
        return ""
    if len(parts) == 1 and not as_list:
        only = parts[0]
        if isinstance(only, TextPart) and _plain(only):
            return only.text
    return [_user_part(p) for p in parts]


def _tool_call(part: ToolCallPart) -> dict[str, Any]:
    wire = {
        "id": part.id,
        "type": "function",
        "function": {"name": part.name, "arguments": part.arguments},
    }
    return wire if part.extensions is None else _own(wire, part.extensions)


def _tool_result_text(part: ToolResultPart) -> str:
    """OpenAI has no error flag on tool results, so a failure is said in the text."""
    text = part.content_text()
    return f"{TOOL_ERROR_PREFIX}{text}" if part.is_error else text


def _with_name(out: dict[str, Any], message: Message, quirks: OpenAIQuirks) -> dict[str, Any]:
    if message.name is not None and quirks.message_names:
        out["name"] = message.name
    return out


# Module constants: a global lookup is cheaper than an attribute of the enum class or a union
# built by ``TextPart | ImagePart`` at each call.
_USER = Role.USER
_ASSISTANT = Role.ASSISTANT
_TOOL = Role.TOOL
_DEVELOPER = Role.DEVELOPER
_USER_PARTS = (TextPart, ImagePart, DocumentPart, ExtensionPart)


def _add_messages(out: list[dict[str, Any]], message: Message, quirks: OpenAIQuirks) -> None:
    """One neutral message as one or more OpenAI messages (tool results: one per result), the
    message's own OpenAI extensions on the last of them (another format's are left out)."""
    _add_message(out, message, quirks)
    extensions = message.extensions
    if extensions is not None and extensions.owner == OPENAI_CHAT:
        out[-1].update(extensions.fields)


def _add_message(out: list[dict[str, Any]], message: Message, quirks: OpenAIQuirks) -> None:
    role = message.role
    if role is _USER:
        content = message.content
        if (
            len(content) == 1
            and type(content[0]) is TextPart
            and not message.content_list
            and content[0].extensions is None
        ):  # the usual one: a plain text
            wire: str | list[dict[str, Any]] = content[0].text
        else:
            wire = _content(
                [p for p in content if isinstance(p, _USER_PARTS)], message.content_list
            )
        out.append(_with_name({"role": "user", "content": wire}, message, quirks))
    elif role is _ASSISTANT:
        out.append(_assistant(message, quirks))
    elif role is _TOOL:
        out += _tool_messages(message)
    else:
        wire_role = "developer" if role is _DEVELOPER and quirks.developer_role else "system"
        texts = [p for p in message.content if isinstance(p, TextPart)]
        out.append(
            _with_name({"role": wire_role, "content": _texts(texts, message)}, message, quirks)
        )


def _texts(texts: list[TextPart], message: Message) -> str | list[dict[str, Any]]:
    """System, developer or assistant text: a string, or parts when the client sent parts (or
    there are several, or one carries fields a string cannot)."""
    if len(texts) == 1 and not message.content_list and _plain(texts[0]):
        return texts[0].text
    return [_text_part(t) for t in texts] if texts else ""


def _assistant(message: Message, quirks: OpenAIQuirks) -> dict[str, Any]:
    texts = [p for p in message.content if isinstance(p, TextPart)]
    calls = message.tool_calls
    assistant: dict[str, Any] = {"role": "assistant"}
    if texts:
        assistant["content"] = _texts(texts, message)
    else:
        assistant["content"] = None if calls else ""
    if calls:
        assistant["tool_calls"] = [_tool_call(c) for c in calls]
    return _with_name(assistant, message, quirks)


def _tool_messages(message: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": p.tool_call_id, "content": _tool_result_text(p)}
        for p in message.content
        if isinstance(p, ToolResultPart)
    ]
    # Tool messages carry text only; anything else the tool returned follows as a user turn.
    extra = [p for p in message.content if isinstance(p, _USER_PARTS)]
    if extra:
        out.append({"role": "user", "content": _content(extra)})
    return out


def _tool(spec: ToolSpec, quirks: OpenAIQuirks, position: int = 0) -> dict[str, Any]:
    if spec.server_type is not None:
        where = f"tools[{position}].type"
        raise PalyraError.of(
            FailureClass.UNSUPPORTED_CAPABILITY,
            f"{where}: tool {spec.name!r} is a {spec.server_type!r} tool, which the upstream of "
            "the API that defines it runs; OpenAI Chat Completions has no such tool: remove it, "
            "or route to a model of that API",
            param=where,
            provider="openai",
        )
    function: dict[str, Any] = {"name": spec.name, "parameters": spec.parameters}
    if spec.description is not None:
        function["description"] = spec.description
    if spec.strict is not None and quirks.strict_schemas:
        function["strict"] = spec.strict
    tool = {"type": "function", "function": function}
    extensions = spec.extensions
    if extensions is not None and extensions.owner == OPENAI_CHAT:
        # The function's own extras ride under "function" (a tool-level field of that name is
        # the function itself, never an extra); the others are the tool's.
        fields = extensions.fields
        inner = fields.get("function")
        if isinstance(inner, dict):
            function.update(inner)
        tool.update({k: v for k, v in fields.items() if k != "function"})
    return tool


def _tool_choice(choice: str | NamedToolChoice) -> str | dict[str, Any]:
    if isinstance(choice, NamedToolChoice):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def schema_instruction(schema: dict[str, Any]) -> str:
    """The system text that stands in for a JSON schema a server cannot enforce."""
    return "Reply with a JSON object that matches this JSON schema: " + orjson.dumps(
        schema, option=orjson.OPT_SORT_KEYS
    ).decode("utf-8")


def _response_format(
    fmt: ResponseFormat, quirks: OpenAIQuirks
) -> tuple[dict[str, Any], str | None]:
    """The wire ``response_format`` and, when a schema had to be dropped, the instruction text."""
    if fmt.type == "text":
        return {"type": "text"}, None
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        if not quirks.response_format_json_schema:
            return {"type": "json_object"}, schema_instruction(fmt.json_schema)
        body: dict[str, Any] = {
            "name": fmt.schema_name or DEFAULT_SCHEMA_NAME,
            "schema": fmt.json_schema,
        }
        if fmt.strict is not None and quirks.strict_schemas:
            body["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": body}, None
    if not quirks.response_format_json_object:
        any_object = {"name": "json_object", "schema": {"type": "object"}}
        return {"type": "json_schema", "json_schema": any_object}, None
    return {"type": "json_object"}, None


def _prediction(prediction: Prediction) -> dict[str, Any]:
    content = prediction.content
    wire = content if isinstance(content, str) else [_text_part(p) for p in content]
    return {"type": "content", "content": wire}


def _add_options(payload: dict[str, Any], request: ChatRequest) -> None:
    """The sampling and answer options, each only when the request sets it (a request that
    set none of them costs one set test: most requests set none)."""
    if OPTION_FIELDS.isdisjoint(request.model_fields_set):
        return
    if request.n is not None:
        # n > 1: the answer's other choices come back as sent (ChatResponse.other_choices).
        payload["n"] = request.n
    if request.seed is not None:
        payload["seed"] = request.seed
    if request.presence_penalty is not None:
        payload["presence_penalty"] = request.presence_penalty
    if request.frequency_penalty is not None:
        payload["frequency_penalty"] = request.frequency_penalty
    if request.logit_bias:
        payload["logit_bias"] = dict(request.logit_bias)
    if request.logprobs is not None:
        payload["logprobs"] = request.logprobs
    if request.top_logprobs is not None:
        payload["top_logprobs"] = request.top_logprobs
    if request.service_tier is not None:
        payload["service_tier"] = request.service_tier
    if request.store is not None:
        payload["store"] = request.store
    if request.prediction is not None:
        payload["prediction"] = _prediction(request.prediction)


def reasoning_effort(
    reasoning: ReasoningConfig, budgets: Mapping[ReasoningEffort, int] = DEFAULT_EFFORT_BUDGETS
) -> ReasoningEffort | None:
    """OpenAI's ``reasoning_effort`` for a reasoning configuration: its level (``max`` as
    ``xhigh``, the highest OpenAI level), else the level whose budget covers its thinking budget
    (:func:`effort_for_budget`); ``None`` (left out, the model's default) when reasoning is off
    or adaptive and no level was named: an Anthropic client turning thinking off asks a
    non-reasoning model for nothing it could refuse."""
    effort = reasoning.effort
    if effort is not None:
        return "xhigh" if effort == "max" else effort
    if reasoning.enabled and not reasoning.adaptive and reasoning.budget_tokens is not None:
        return effort_for_budget(reasoning.budget_tokens, budgets)
    return None


def build_openai_chat_payload(
    request: ChatRequest,
    quirks: OpenAIQuirks = _DEFAULT_QUIRKS,
    effort_budgets: Mapping[ReasoningEffort, int] = DEFAULT_EFFORT_BUDGETS,
) -> dict[str, Any]:
    """The Chat Completions body for ``request``; ``request.stream`` decides ``stream``."""
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        _add_messages(messages, message, quirks)
    payload: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.tools:
        payload["tools"] = [_tool(t, quirks, i) for i, t in enumerate(request.tools)]
        if request.parallel_tool_calls is not None and quirks.parallel_tool_calls:
            payload["parallel_tool_calls"] = request.parallel_tool_calls
        # OpenAI rejects tool_choice without tools (400); without tools none/auto mean the same.
        if request.tool_choice is not None:
            payload["tool_choice"] = _tool_choice(request.tool_choice)
    if request.response_format is not None:
        fmt, instruction = _response_format(request.response_format, quirks)
        payload["response_format"] = fmt
        if instruction is not None:
            messages.insert(0, {"role": "system", "content": instruction})
    if request.max_output_tokens is not None:
        key = "max_completion_tokens" if quirks.max_completion_tokens else "max_tokens"
        payload[key] = request.max_output_tokens
    if request.reasoning is not None:
        effort = reasoning_effort(request.reasoning, effort_budgets)
        if effort is not None:
            payload["reasoning_effort"] = effort
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.stop:
        payload["stop"] = list(request.stop)
    if request.top_k is not None:
        if not quirks.top_k:
            raise _invalid(
                "top_k: OpenAI has no top_k; remove it, or route to an Anthropic model or an "
                "OpenAI-compatible server that reads it",
                param="top_k",
            )
        payload["top_k"] = request.top_k
    if request.user is not None:
        payload["user"] = request.user
    if request.metadata and quirks.metadata:
        payload["metadata"] = dict(request.metadata)
    _add_options(payload, request)
    extensions = request.extensions
    if extensions is not None:
        if extensions.owner != OPENAI_CHAT:
            refuse_unmapped(extensions, OPENAI_CHAT)
        else:
            payload.update(extensions.fields)
    if request.stream:
        payload["stream"] = True
        if quirks.stream_usage:
            payload["stream_options"] = {"include_usage": True}
    return payload


def build_openai_embeddings_payload(request: EmbeddingRequest) -> dict[str, Any]:
    """The ``/embeddings`` body: the whole batch in one call."""
    payload: dict[str, Any] = {
        "model": request.model,
        "input": list(request.inputs),
        "encoding_format": request.encoding_format,
    }
    if request.dimensions is not None:
        payload["dimensions"] = request.dimensions
    if request.user is not None:
        payload["user"] = request.user
    return payload


TranscriptionFile = tuple[str, bytes, str]


def build_openai_transcription_form(
    request: TranscriptionRequest,
) -> tuple[dict[str, str | list[str]], dict[str, TranscriptionFile]]:
    """Multipart ``(fields, files)`` for ``/audio/transcriptions``; list fields repeat."""
    fields: dict[str, str | list[str]] = {
        "model": request.model,
        "response_format": request.response_format,
    }
    if request.language is not None:
        fields["language"] = request.language
    if request.prompt is not None:
        fields["prompt"] = request.prompt
    if request.temperature is not None:
        fields["temperature"] = repr(float(request.temperature))
    if request.timestamp_granularities:
        fields["timestamp_granularities[]"] = list(request.timestamp_granularities)
    files = {"file": (request.filename, request.audio, request.media_type)}
    return fields, files
