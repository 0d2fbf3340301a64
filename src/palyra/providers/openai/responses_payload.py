"""Neutral ``ChatRequest`` -> an OpenAI ``POST /v1/responses`` body (pure).

For models configured with ``api = "responses"``. Messages become input items (system and
developer turns stay items, in order; tool calls and results become ``function_call`` and
``function_call_output`` items; reasoning OpenAI issued goes back as the ``reasoning`` item it
came in, id and ``encrypted_content``; reasoning from other upstreams, which OpenAI cannot
decrypt, is left out). The upstream is asked not to store anything
(``store: false``, Palyra keeps its own stored responses) and to return encrypted reasoning,
so a later turn can send it back. Fields the Responses API lacks (``stop``, ``top_k``) are
refused rather than dropped: either changes what the model answers.
"""

from __future__ import annotations

from typing import Any

from palyra.model import (
    ChatRequest,
    DocumentPart,
    FailureClass,
    ImagePart,
    Message,
    NamedToolChoice,
    PalyraError,
    ResponseFormat,
    Role,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)
from palyra.model.extensions import OPENAI_RESPONSES, Extensions, refuse_foreign
from palyra.providers.openai.payload import DEFAULT_SCHEMA_NAME
from palyra.providers.openai.responses_response import unpack_signature

ENCRYPTED_REASONING = "reasoning.encrypted_content"
# An input item the contract has no part for (a built-in tool's call or its output, a kind Palyra
# does not know) rides in the conversation as a message of its own, the item in its extensions.
ITEM_KEY = "item"
_OUTPUT_ROLES = ("mcp_approval_response",)


def passed_item_message(item: dict[str, Any]) -> Message:
    """A message carrying one Responses item as sent, in its place in the conversation: a
    Responses upstream gets the item back; other formats have no content to send (by rule)."""
    kind = str(item.get("type", ""))
    output = kind.endswith("_output") or kind in _OUTPUT_ROLES
    return Message(
        role=Role.USER if output else Role.ASSISTANT,
        content=[],
        extensions=Extensions(owner=OPENAI_RESPONSES, fields={ITEM_KEY: item}),
    )


def passed_item(message: Message) -> dict[str, Any] | None:
    """The Responses item ``message`` carries, if it is such a message."""
    extensions = message.extensions
    if extensions is None or extensions.owner != OPENAI_RESPONSES or message.content:
        return None
    item = extensions.fields.get(ITEM_KEY)
    return item if isinstance(item, dict) else None


LOGPROBS = "message.output_text.logprobs"
# Chat Completions options the Responses API does not have: (field, what it lacks).
_ABSENT = (
    ("seed", "seed"),
    ("presence_penalty", "presence penalty"),
    ("frequency_penalty", "frequency penalty"),
    ("logit_bias", "logit_bias"),
    ("n", "n (several choices)"),
    ("prediction", "predicted outputs"),
)


def _unsupported(field: str, request: ChatRequest, why: str) -> PalyraError:
    return PalyraError.of(
        FailureClass.UNSUPPORTED_CAPABILITY,
        f"{field}: model {request.model!r} is served through OpenAI's Responses API "
        f'(api = "responses"), which has no {why}; remove {field} or use a model on Chat '
        "Completions",
        param=field,
        model=request.model,
    )


def _document(part: DocumentPart) -> dict[str, Any]:
    if part.text is not None:
        return {"type": "input_text", "text": part.text}
    out: dict[str, Any] = {"type": "input_file"}
    if part.data is not None:
        out["file_data"] = f"data:{part.media_type};base64,{part.data}"
        out["filename"] = part.filename or "document.pdf"
    elif part.url is not None:
        out["file_url"] = part.url
    else:
        out["file_id"] = part.file_id
    return out


def _user_part(part: Any) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "input_text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "input_image", "image_url": part.as_url(), "detail": part.detail or "auto"}
    if isinstance(part, DocumentPart):
        return _document(part)
    raise TypeError(f"a user message cannot hold {type(part).__name__}")


def _assistant_items(message: Message) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            items.append({"role": "assistant", "content": "".join(texts)})
            texts.clear()

    for part in message.content:
        if isinstance(part, TextPart):
            texts.append(part.text)
            continue
        flush()
        if isinstance(part, ThinkingPart):
            issued = unpack_signature(part.signature)
            if issued is not None:
                summary = [{"type": "summary_text", "text": part.thinking}] if part.thinking else []
                items.append(
                    {
                        "type": "reasoning",
                        "id": issued[0],
                        "summary": summary,
                        "encrypted_content": issued[1],
                    }
                )
        elif isinstance(part, ToolCallPart):
            items.append(
                {
                    "type": "function_call",
                    "call_id": part.id,
                    "name": part.name,
                    "arguments": part.arguments,
                }
            )
    flush()
    return items


def input_items(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as Responses input items, in order."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.extensions is not None:
            passed = passed_item(message)
            if passed is not None:
                items.append(passed)
                continue
        if message.role is Role.ASSISTANT:
            items += _assistant_items(message)
        elif message.role is Role.TOOL:
            items += [
                {
                    "type": "function_call_output",
                    "call_id": part.tool_call_id,
                    "output": part.content_text(),
                }
                for part in message.content
                if isinstance(part, ToolResultPart)
            ]
        elif message.role is Role.USER:
            items.append({"role": "user", "content": [_user_part(p) for p in message.content]})
        else:
            items.append({"role": message.role.value, "content": message.text_content()})
    return items


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": spec.parameters,
        "strict": spec.strict if spec.strict is not None else False,
    }


def _tool_choice(choice: str | NamedToolChoice) -> str | dict[str, Any]:
    if isinstance(choice, NamedToolChoice):
        return {"type": "function", "name": choice.name}
    return choice


def _text_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type != "json_schema":
        return {"format": {"type": fmt.type}}
    out: dict[str, Any] = {
        "type": "json_schema",
        "name": fmt.schema_name or DEFAULT_SCHEMA_NAME,
        "schema": fmt.json_schema or {},
    }
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    return {"format": out}


# Chat Completions parameters the contract does not model, with the same meaning on the
# Responses API: (Responses name, or "text.<key>" for an option of ``text``).
CHAT_COUNTERPARTS = {
    "prompt_cache_key": "prompt_cache_key",
    "prompt_cache_retention": "prompt_cache_retention",
    "safety_identifier": "safety_identifier",
    "verbosity": "text.verbosity",
}


def _chat_extensions(extensions: Extensions) -> dict[str, Any]:
    """Another format's extra fields as Responses fields; a 400 naming those with no
    counterpart (a Chat Completions ``web_search_options``, ``audio``..., any Anthropic one)."""
    fields = {k: v for k, v in extensions.fields.items() if k not in extensions.mapped}
    mapped = CHAT_COUNTERPARTS if extensions.owner == "openai_chat" else {}
    rest = {k: v for k, v in fields.items() if k not in mapped}
    if rest:
        raise refuse_foreign(Extensions(owner=extensions.owner, fields=rest), OPENAI_RESPONSES)
    out: dict[str, Any] = {}
    for key, value in fields.items():
        target = mapped[key]
        if target.startswith("text."):
            out.setdefault("text", {})[target[5:]] = value
        else:
            out[target] = value
    return out


def _write_back(payload: dict[str, Any], fields: dict[str, Any]) -> None:
    """A Responses client's own fields, as it sent them: built-in tools after the function
    tools, ``text`` options beside the format, anything else as is."""
    for key, value in fields.items():
        if key == "tools" and isinstance(value, list):
            payload["tools"] = [*payload.get("tools", []), *value]
        elif key == "text" and isinstance(value, dict):
            payload["text"] = {**payload.get("text", {}), **value}
        elif key == "include" and isinstance(value, list):
            payload["include"] += [v for v in value if v not in payload["include"]]
        else:
            payload[key] = value


def build_openai_responses_payload(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``/v1/responses`` body for ``request``; a ``PalyraError`` names a field the Responses
    API cannot carry."""
    extensions = request.extensions
    chat_fields: dict[str, Any] = {}
    if extensions is not None and extensions.owner != OPENAI_RESPONSES:
        chat_fields, extensions = _chat_extensions(extensions), None
    if request.stop:
        raise _unsupported("stop", request, "stop sequences")
    if request.top_k is not None:
        raise _unsupported("top_k", request, "top_k sampling")
    for name, why in _ABSENT:
        value = getattr(request, name)
        if value not in (None, {}, 1):
            raise _unsupported(name, request, why)
    payload: dict[str, Any] = {
        "model": request.model,
        "input": input_items(request.messages),
        "store": False,
        "include": [ENCRYPTED_REASONING],
    }
    if stream:
        payload["stream"] = True
    if request.tools:
        payload["tools"] = [_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        payload["tool_choice"] = _tool_choice(request.tool_choice)
    if request.parallel_tool_calls is not None:
        payload["parallel_tool_calls"] = request.parallel_tool_calls
    for name in ("max_output_tokens", "temperature", "top_p", "user"):
        value = getattr(request, name)
        if value is not None:
            payload[name] = value
    if request.metadata:
        payload["metadata"] = dict(request.metadata)
    if request.store is not None:  # a Chat Completions client's own choice
        payload["store"] = request.store
    if request.service_tier is not None:
        payload["service_tier"] = request.service_tier
    if request.logprobs:
        payload["include"].append(LOGPROBS)
        if request.top_logprobs is not None:
            payload["top_logprobs"] = request.top_logprobs
    if request.response_format is not None:
        payload["text"] = _text_format(request.response_format)
    if extensions is not None:
        _write_back(payload, extensions.fields)
    elif chat_fields:
        _write_back(payload, chat_fields)
    reasoning = request.reasoning
    if reasoning is not None:
        if not reasoning.enabled:
            payload["reasoning"] = {"effort": "none"}
        else:
            config: dict[str, Any] = {}
            if reasoning.effort is not None:
                config["effort"] = "xhigh" if reasoning.effort == "max" else reasoning.effort
            if reasoning.display == "summarized":
                config["summary"] = "auto"
            payload["reasoning"] = config
    return payload
