"""OpenAI ``/v1/chat/completions``: request validation and response/chunk shapes (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from palyra.testing.anthropic_messages import sign_thinking
from palyra.testing.conversation import (
    Conversation,
    Reply,
    ToolDef,
    ToolResult,
    count_words,
    split_words,
)
from palyra.testing.wire_errors import invalid

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
USER_PART_TYPES = ("text", "image_url", "input_audio", "file")
TOOL_ARGUMENT_FRAGMENT_CHARS = 10


SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")


REASONING_FIELDS = ("reasoning_content", "reasoning", "reasoning_details", "thinking_blocks")
"""How OpenAI-compatible servers spell reasoning: DeepSeek and vLLM (``reasoning_content``),
OpenRouter and newer vLLM (``reasoning``), OpenRouter's typed and signed ``reasoning_details``
(beside ``reasoning``), LiteLLM's signed ``thinking_blocks`` (beside ``reasoning_content``)."""


@dataclass(frozen=True, slots=True)
class ChatOptions:
    stream: bool
    include_usage: bool
    logprobs: bool = False
    top_logprobs: int = 0
    service_tier: str = "default"
    n: int = 1


def _choices(value: str, allowed: tuple[str, ...]) -> str:
    quoted = [f"'{a}'" for a in allowed]
    return f"Invalid value: '{value}'. Supported values are: {', '.join(quoted)}."


def _text_of(content: Any, where: str, part_types: tuple[str, ...]) -> tuple[str, int]:
    """(text, count of non-text parts) of a message content, or a 400 naming the bad part."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise invalid(
            f"Invalid type for '{where}': expected a string or an array of content parts.",
            param=where,
            code="invalid_type",
        )
    texts: list[str] = []
    other = 0
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in part_types:
            raise invalid(
                _choices(str(kind), part_types), param=f"{where}[{j}].type", code="invalid_value"
            )
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise invalid(
                    f"Missing required parameter: '{where}[{j}].text'.",
                    param=f"{where}[{j}].text",
                    code="missing_required_parameter",
                )
            texts.append(part["text"])
        else:
            if kind == "file":
                _check_file(part, f"{where}[{j}].file")
            other += 1
    return " ".join(texts), other


def _check_file(part: dict[str, Any], where: str) -> None:
    """A ``file`` part: an object with a base64 data URL ``file_data`` or a ``file_id``."""
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    file_id = file.get("file_id") if isinstance(file, dict) else None
    if isinstance(data, str) and data.startswith("data:") and ";base64," in data:
        return
    if isinstance(file_id, str) and file_id.startswith("file-"):
        return
    raise invalid(
        f"Invalid '{where}': expected 'file_data' as a base64 data URL or a 'file_id'.",
        param=where,
        code="invalid_value",
    )


def _tools(body: dict[str, Any]) -> list[ToolDef]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    out: list[ToolDef] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise invalid(
                f"Invalid 'tools[{i}]': expected {{'type': 'function', 'function': {{...}}}}.",
                f"tools[{i}]",
                "invalid_value",
            )
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(
                f"Missing required parameter: 'tools[{i}].function.name'.",
                f"tools[{i}].function.name",
                "missing_required_parameter",
            )
        params = fn.get("parameters", {})
        out.append(ToolDef(name, params if isinstance(params, dict) else {}))
    return out


def _tool_choice(body: dict[str, Any], tools: list[ToolDef]) -> str:
    choice = body.get("tool_choice")
    if choice is None:
        return "auto"
    if not tools:
        raise invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
        )
    if choice in ("none", "auto", "required"):
        return str(choice)
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str):
        raise invalid(
            _choices(str(choice), ("none", "auto", "required")), "tool_choice", "invalid_value"
        )
    if name not in {t.name for t in tools}:
        raise invalid(
            f"Invalid value for 'tool_choice': tool '{name}' is not one of the tools offered.",
            "tool_choice",
            "invalid_value",
        )
    return name


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise invalid(
            f"Invalid '{name}': expected an integer >= 1, but got {value!r} instead.",
            name,
            "invalid_value",
        )
    return value


def _options(body: dict[str, Any]) -> ChatOptions:
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise invalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    opts = body.get("stream_options")
    if opts is not None and not stream:
        raise invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    include = bool(opts.get("include_usage")) if isinstance(opts, dict) else False
    _sampling(body)
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise invalid(
            "Invalid type for 'logprobs': expected a boolean.", "logprobs", "invalid_type"
        )
    top = body.get("top_logprobs")
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
            raise invalid("Invalid 'top_logprobs': expected 0 to 20.", "top_logprobs")
        if logprobs is not True:
            raise invalid(
                "Invalid value for 'top_logprobs': 'logprobs' must be set to true.",
                "top_logprobs",
            )
    tier = body.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise invalid(_choices(str(tier), SERVICE_TIERS), "service_tier", "invalid_value")
    return ChatOptions(
        stream=bool(stream),
        include_usage=include,
        logprobs=logprobs is True,
        top_logprobs=top or 0,
        service_tier="default" if tier in (None, "auto") else str(tier),
        n=body.get("n") or 1,
    )


def _sampling(body: dict[str, Any]) -> None:
    """Type and range checks of the sampling options, as the live API makes them."""
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise invalid("Invalid type for 'seed': expected an integer.", "seed", "invalid_type")
    for name in ("presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or not -2 <= value <= 2):
            raise invalid(f"Invalid '{name}': expected a number from -2 to 2.", name)
    bias = body.get("logit_bias")
    if bias is not None and (
        not isinstance(bias, dict)
        or not all(k.isdigit() and isinstance(v, int | float) for k, v in bias.items())
    ):
        raise invalid(
            "Invalid 'logit_bias': expected an object of token ids to numbers.", "logit_bias"
        )
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128):
        raise invalid("Invalid 'n': expected an integer from 1 to 128.", "n")


def token_logprobs(pieces: list[str], top: int) -> dict[str, Any]:
    """A choice's ``logprobs``: each piece one token, its log probability a fixed function of
    it (so tests can compute it), and ``top`` alternatives, the token itself first."""

    def entry(token: str) -> dict[str, Any]:
        return {"token": token, "logprob": -(len(token) % 7) / 10, "bytes": list(token.encode())}

    content = []
    for piece in pieces:
        alternatives = [entry(piece), *(entry(f"{piece}~{k}") for k in range(1, top))][:top]
        content.append({**entry(piece), "top_logprobs": alternatives})
    return {"content": content, "refusal": None}


def _stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        return list(stop)
    raise invalid("Invalid 'stop': expected a string or an array of up to 4 strings.", "stop")


def _response_format(body: dict[str, Any], conv: Conversation) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        conv.json_object = True
    elif kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise invalid(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema",
                "missing_required_parameter",
            )
        conv.json_schema = schema if isinstance(schema, dict) else {}
    elif kind != "text":
        raise invalid(
            _choices(str(kind), ("text", "json_object", "json_schema")),
            "response_format.type",
            "invalid_value",
        )


def _messages(messages: list[Any], conv: Conversation) -> None:
    """Walk the messages once: validate each, count input tokens, note what the reply needs."""
    names: dict[str, str] = {}
    unanswered: list[str] = []
    tokens = 0
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise invalid(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
        role = msg.get("role")
        if role not in ROLES:
            raise invalid(_choices(str(role), ROLES), f"{where}.role", "invalid_value")
        if unanswered and role not in ("tool", "function"):
            raise invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(unanswered)}",
                f"{where}.role",
            )
        content = msg.get("content")
        if role == "assistant":
            calls = msg.get("tool_calls") or []
            if content is None and not calls:
                raise invalid(
                    f"Invalid value for '{where}.content': expected a string, got null.",
                    f"{where}.content",
                )
            if content is not None:
                tokens += count_words(_text_of(content, f"{where}.content", ("text", "refusal"))[0])
            for j, call in enumerate(calls if isinstance(calls, list) else [None]):
                fn = call.get("function") if isinstance(call, dict) else None
                if (
                    not isinstance(fn, dict)
                    or not isinstance(call.get("id"), str)
                    or not isinstance(fn.get("name"), str)
                    or not isinstance(fn.get("arguments"), str)
                ):
                    raise invalid(
                        f"Invalid '{where}.tool_calls[{j}]': expected an object with 'id', "
                        "'type': 'function' and 'function': {'name', 'arguments'}.",
                        f"{where}.tool_calls[{j}]",
                    )
                names[call["id"]] = fn["name"]
                unanswered.append(call["id"])
                tokens += count_words(fn["arguments"])
            conv.tool_results = []
            conv.last_role = "assistant"
        elif role in ("tool", "function"):
            call_id = msg.get("tool_call_id")
            if role == "tool" and (not isinstance(call_id, str) or call_id not in names):
                raise invalid(
                    f"Invalid parameter: '{where}' has role 'tool' and tool_call_id {call_id!r}, "
                    "which answers no 'tool_calls' entry of an earlier assistant message.",
                    f"{where}.tool_call_id",
                )
            text, _ = _text_of(
                content if content is not None else "", f"{where}.content", ("text",)
            )
            tokens += count_words(text)
            if call_id in unanswered:
                unanswered.remove(call_id)
            name = names.get(str(call_id), str(msg.get("name", call_id)))
            conv.tool_results.append(ToolResult(name, text))
            conv.last_role = "tool"
        else:
            if content is None:
                raise invalid(
                    f"Missing required parameter: '{where}.content'.",
                    f"{where}.content",
                    "missing_required_parameter",
                )
            types = USER_PART_TYPES if role == "user" else ("text",)
            text, other = _text_of(content, f"{where}.content", types)
            tokens += count_words(text) + other
            if role == "user":
                conv.last_user_text = text
                conv.last_role = "user"
    if unanswered:
        raise invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            f"to each 'tool_call_id'. The following tool_call_ids did not have response "
            f"messages: {', '.join(unanswered)}",
            "messages",
        )
    conv.input_tokens = tokens


def parse_chat(body: Any) -> tuple[Conversation, ChatOptions]:
    """Validate a Chat Completions body the way the live API does; 400s name the parameter."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", None, "missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not messages:
        raise invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
            "empty_array",
        )
    conv = Conversation(model=model)
    _messages(messages, conv)
    conv.tools = _tools(body)
    conv.tool_choice = _tool_choice(body, conv.tools)
    conv.parallel_tool_calls = body.get("parallel_tool_calls") is not False
    conv.max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(
        body, "max_tokens"
    )
    conv.stop = _stop(body)
    _response_format(body, conv)
    return conv, _options(body)


def _finish(reply: Reply) -> str:
    return "stop" if reply.finish == "stop_sequence" else reply.finish


def usage(reply: Reply, n: int = 1) -> dict[str, Any]:
    """Usage of an answer of ``n`` choices: each choice's output counts (the later ones carry
    their two-word mark, see :func:`choice_text`)."""
    output = reply.output_tokens * n + 2 * (n - 1)
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": output,
        "total_tokens": reply.input_tokens + output,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def choice_text(reply: Reply, index: int) -> str:
    """The text of choice ``index`` (``n > 1``): the first choice's, and the others' marked."""
    return reply.text if index == 0 else f"{reply.text} (choice {index})"


def _reasoning(text: str, field: str, signature: str | None) -> dict[str, Any]:
    """A message's (or a delta's) reasoning, spelled as the server of ``field`` spells it."""
    if field == "reasoning_details":
        detail: dict[str, Any] = {"type": "reasoning.text", "text": text, "index": 0}
        if signature is not None:
            detail["signature"] = signature
        return {"reasoning": text, "reasoning_details": [detail]}
    if field == "thinking_blocks":
        block: dict[str, Any] = {"type": "thinking", "thinking": text}
        if signature is not None:
            block["signature"] = signature
        return {"reasoning_content": text, "thinking_blocks": [block]}
    return {field: text}


def completion(
    reply: Reply,
    *,
    id: str,
    model: str,
    created: int,
    options: ChatOptions | None = None,
    reasoning_field: str = "reasoning_content",
    extras: bool = False,
) -> dict[str, Any]:
    """A whole answer. ``extras`` adds fields Palyra does not model, as Azure OpenAI sends
    them: ``prompt_filter_results`` on the answer, ``content_filter_results`` on each choice."""
    n = options.n if options is not None else 1
    choices = []
    for index in range(n):
        text = choice_text(reply, index)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if not reply.calls else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in reply.calls
            ]
        if reply.thinking is not None:  # as OpenAI-compatible servers send reasoning
            signature = sign_thinking(reply.thinking)
            message.update(_reasoning(reply.thinking, reasoning_field, signature))
        choice: dict[str, Any] = {
            "index": index,
            "message": message,
            "logprobs": token_logprobs(split_words(text), options.top_logprobs)
            if options is not None and options.logprobs
            else None,
            "finish_reason": _finish(reply),
        }
        if extras:
            choice["content_filter_results"] = {"hate": {"filtered": False, "severity": "safe"}}
        choices.append(choice)
    answer = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage(reply, n),
        "service_tier": options.service_tier if options is not None else "default",
        "system_fingerprint": "fp_palyra_fake",
    }
    if extras:
        answer["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
    return answer


def chunks(
    reply: Reply,
    *,
    id: str,
    model: str,
    created: int,
    words_per_chunk: int,
    include_usage: bool,
    options: ChatOptions | None = None,
    reasoning_field: str = "reasoning_content",
    extras: bool = False,
) -> Iterator[dict[str, Any]]:
    """The streamed answer: role, reasoning, text pieces (with their logprobs when asked),
    tool-call pieces by index, finish, usage; with ``n > 1`` each choice's chunk in turn.
    ``extras`` adds an ``obfuscation`` pad to every chunk and ``content_filter_results`` to
    every choice, fields Palyra does not model."""
    tier = options.service_tier if options is not None else "default"
    want_logprobs = options is not None and options.logprobs
    top = options.top_logprobs if options is not None else 0
    n = options.n if options is not None else 1
    count = iter(range(1 << 30))

    def chunk(
        delta: dict[str, Any], finish: str | None = None, logprobs: Any = None, index: int = 0
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {
            "index": index,
            "delta": delta,
            "logprobs": logprobs,
            "finish_reason": finish,
        }
        if extras:
            choice["content_filter_results"] = {}
        out: dict[str, Any] = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": tier,
            "system_fingerprint": "fp_palyra_fake",
            "choices": [choice],
        }
        if include_usage:
            out["usage"] = None
        if extras:
            out["obfuscation"] = "x" * (next(count) % 5 + 1)
        return out

    for index in range(n):
        yield chunk({"role": "assistant", "content": "", "refusal": None}, index=index)
    if reply.thinking is not None:
        thinking = split_words(reply.thinking)
        for start in range(0, len(thinking), words_per_chunk):
            piece = "".join(thinking[start : start + words_per_chunk])
            yield chunk(_reasoning(piece, reasoning_field, None))
        if reasoning_field in ("reasoning_details", "thinking_blocks"):  # signed at the end
            signed = _reasoning("", reasoning_field, sign_thinking(reply.thinking))
            yield chunk({k: v for k, v in signed.items() if isinstance(v, list)})
    texts = [split_words(choice_text(reply, index)) for index in range(n)]
    for start in range(0, max(len(t) for t in texts), words_per_chunk):
        for index, pieces in enumerate(texts):
            run = pieces[start : start + words_per_chunk]
            if not run:
                continue
            logprobs = token_logprobs(run, top) if want_logprobs else None
            yield chunk({"content": "".join(run)}, logprobs=logprobs, index=index)
    for index, call in enumerate(reply.calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        args = call.arguments
        for start in range(0, len(args), TOOL_ARGUMENT_FRAGMENT_CHARS):
            fragment = args[start : start + TOOL_ARGUMENT_FRAGMENT_CHARS]
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    for index in range(n):
        yield chunk({}, _finish(reply), index=index)
    if include_usage:
        final = chunk({})
        final["choices"] = []
        final["usage"] = usage(reply, n)
        yield final
