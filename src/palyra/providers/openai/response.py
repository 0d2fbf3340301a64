"""OpenAI answers -> neutral types: chat completions, usage, finish reasons, embeddings, models."""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

import orjson

from palyra.model import (
    ChatResponse,
    EmbeddingResponse,
    FailureClass,
    FinishReason,
    ModelInfo,
    PalyraError,
    ToolCallPart,
    Usage,
)
from palyra.model.extensions import OPENAI_CHAT, Extensions, unknown_fields

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


# A chat completion's fields (and its message's) the contract models; the others travel as the
# answer's extensions, back to an OpenAI client.
ANSWER_KEYS = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"}
)
ANSWER_MESSAGE_KEYS = frozenset({"role", "content", "refusal", "tool_calls", "function_call"})
ANSWER_CHOICE_KEYS = frozenset({"index", "message", "finish_reason", "logprobs"})
# The reasoning fields of OpenAI-compatible servers, most informative first: LiteLLM's
# ``thinking_blocks`` (signed), OpenRouter's ``reasoning_details`` (typed, signed or
# encrypted), and the bare text of DeepSeek and vLLM (``reasoning_content``) or OpenRouter and
# newer vLLM (``reasoning``). Read into reasoning parts, and kept as sent among the message's
# extensions for an OpenAI client, which gets them as they came.
REASONING_KEYS = ("thinking_blocks", "reasoning_details", "reasoning_content", "reasoning")


def malformed(message: str, *, provider: str | None = None) -> PalyraError:
    where = provider or "openai"
    return PalyraError.of(FailureClass.MALFORMED_RESPONSE, f"{where}: {message}", provider=provider)


def load_json_object(body: bytes, what: str, *, provider: str | None = None) -> dict[str, Any]:
    """Parse an upstream body that must be a JSON object, or fail as a malformed response."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise malformed(f"{what} is not valid JSON ({exc})", provider=provider) from exc
    if not isinstance(value, dict):
        raise malformed(f"{what} is JSON but not an object", provider=provider)
    return value


def finish_reason(reason: object, *, has_tool_calls: bool) -> FinishReason:
    """The neutral finish reason; unknown or missing ones fall back on what the answer holds.

    OpenAI answers a forced call (named or ``required`` tool_choice) with ``stop`` beside the
    calls; that is ``tool_calls`` here, or agent loops (and the Anthropic surface's ``tool_use``)
    would miss them. ``length`` and ``content_filter`` win: a cut-off call is not a finished one.
    """
    mapped = FINISH_REASONS.get(reason) if isinstance(reason, str) else None
    if mapped is None or mapped == "stop":
        return "tool_calls" if has_tool_calls else "stop"
    return mapped


def _count(data: Mapping[str, Any] | None, key: str) -> int:
    # A dict (what orjson gives) and None are told apart without the slow ABC check.
    if data is None or (type(data) is not dict and not isinstance(data, Mapping)):
        return 0
    value = data.get(key)
    return value if isinstance(value, int) and value >= 0 else 0


def usage_fields(usage: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`Usage`'s fields from an OpenAI usage object (``prompt_tokens`` already includes
    the cached part): the input of :func:`usage_from_openai`, or of a model holding a usage."""
    return {
        "input_tokens": _count(usage, "prompt_tokens"),
        "output_tokens": _count(usage, "completion_tokens"),
        "cached_input_tokens": _count(usage.get("prompt_tokens_details"), "cached_tokens"),
        "reasoning_tokens": _count(usage.get("completion_tokens_details"), "reasoning_tokens"),
        "source": "provider",
    }


_USAGE_KEYS = frozenset(
    {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    }
)
_PROMPT_DETAILS = frozenset({"cached_tokens"})
_COMPLETION_DETAILS = frozenset({"reasoning_tokens"})


def usage_extensions(usage: Mapping[str, Any]) -> Extensions | None:
    """The usage object as sent, when it holds counts :class:`Usage` does not model (OpenAI's
    own ``audio_tokens`` and prediction counts, a compatible server's extras); None otherwise."""
    prompt, completion = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
    if (
        usage.keys() <= _USAGE_KEYS
        and (not isinstance(prompt, dict) or prompt.keys() <= _PROMPT_DETAILS)
        and (not isinstance(completion, dict) or completion.keys() <= _COMPLETION_DETAILS)
    ):
        return None
    return Extensions.model_construct(owner=OPENAI_CHAT, fields={"usage": usage})


def usage_from_openai(usage: Mapping[str, Any]) -> Usage:
    """Provider usage; ``prompt_tokens`` already includes the cached part."""
    return Usage(**usage_fields(usage))


def _token(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    token, logprob, data = raw.get("token"), raw.get("logprob"), raw.get("bytes")
    if not isinstance(token, str) or not isinstance(logprob, int | float):
        return None
    out: dict[str, Any] = {"token": token, "logprob": float(logprob)}
    if isinstance(data, list) and all(type(b) is int for b in data):
        out["bytes"] = data
    return out


def _tokens(raw: object) -> list[dict[str, Any]] | None:
    if not isinstance(raw, list):
        return None
    tokens = []
    for item in raw:
        token = _token(item)
        if token is None:
            continue  # one malformed entry costs that entry, not the answer
        tops = item.get("top_logprobs")
        if isinstance(tops, list):
            token["top_logprobs"] = [t for t in map(_token, tops) if t is not None]
        tokens.append(token)
    return tokens


def logprobs_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`Logprobs`'s fields from a choice's ``logprobs`` object; entries that are not
    ``{token, logprob, ...}`` are left out rather than failing the answer."""
    return {"content": _tokens(raw.get("content")), "refusal": _tokens(raw.get("refusal"))}


def content_text(content: object) -> str:
    """Message text from a plain string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "output_text")
        )
    return ""


def _tool_calls(message: Mapping[str, Any], response_id: str) -> list[ToolCallPart]:
    calls: list[ToolCallPart] = []
    raw = message.get("tool_calls")
    for position, call in enumerate(raw if isinstance(raw, list) else []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        calls.append(
            ToolCallPart(
                id=str(call.get("id") or f"call_{response_id}_{position}"),
                name=str(function.get("name") or ""),
                arguments=str(function.get("arguments") or "{}"),
            )
        )
    legacy = message.get("function_call")
    if not calls and isinstance(legacy, dict):
        calls.append(
            ToolCallPart(
                id=f"call_{response_id}_0",
                name=str(legacy.get("name") or ""),
                arguments=str(legacy.get("arguments") or "{}"),
            )
        )
    return calls


def parse_openai_chat_response(
    body: Mapping[str, Any],
    *,
    provider: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ChatResponse:
    """A whole chat completion; no usage in the body gives a zero usage marked ``estimated``.
    ``headers`` are the answer's headers a client reads (rate limits, request id)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed("the chat completion has no choices", provider=provider)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise malformed("the chat completion's first choice has no message", provider=provider)
    response_id = str(body.get("id") or "")
    # Most answers carry neither key; _tool_calls would find nothing in them.
    has_calls = "tool_calls" in message or "function_call" in message
    calls = _tool_calls(message, response_id) if has_calls else []
    content = message.get("content")
    text = content if type(content) is str else content_text(content)
    if not text:
        text = content_text(message.get("refusal"))
    usage = body.get("usage")
    created = body.get("created")
    fingerprint = body.get("system_fingerprint")
    # Set only when the answer carries them (most answers have no logprobs).
    fields: dict[str, Any] = {}
    logprobs = choice.get("logprobs")
    if type(logprobs) is dict:
        fields["logprobs"] = logprobs_fields(logprobs)
    tier = body.get("service_tier")
    if type(tier) is str:
        fields["service_tier"] = tier
    reasoning = reasoning_parts(message)
    if reasoning:
        fields["reasoning"] = reasoning
    if isinstance(usage, dict):
        kept = usage_extensions(usage)
        if kept is not None:
            fields["usage_extensions"] = kept
    if headers:
        fields["headers"] = headers
    extensions = unknown_fields(body, ANSWER_KEYS, OPENAI_CHAT)
    if extensions is not None:
        fields["extensions"] = extensions
    extensions = unknown_fields(message, ANSWER_MESSAGE_KEYS, OPENAI_CHAT)
    if extensions is not None:
        fields["message_extensions"] = extensions
    extensions = unknown_fields(choice, ANSWER_CHOICE_KEYS, OPENAI_CHAT)
    if extensions is not None:
        fields["choice_extensions"] = extensions
    if len(choices) > 1:  # n > 1: the others as they came, for an OpenAI client
        fields["other_choices"] = Extensions(owner=OPENAI_CHAT, fields={"choices": choices[1:]})
    # One validation of the whole answer, usage nested: a Usage built on its own first would
    # be a second pass through pydantic's model machinery (about an eighth of this function).
    return ChatResponse.model_validate(
        {
            **fields,
            "id": response_id,
            "model": str(body.get("model") or ""),
            "content": text,
            "tool_calls": calls,
            "finish_reason": finish_reason(choice.get("finish_reason"), has_tool_calls=bool(calls)),
            "usage": usage_fields(usage) if isinstance(usage, dict) else {"source": "estimated"},
            "provider": provider,
            "created": created if isinstance(created, int) else None,
            "system_fingerprint": fingerprint if isinstance(fingerprint, str) else None,
        }
    )


def _thinking(text: object, signature: object) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    signed = signature if isinstance(signature, str) and signature else None
    return {"type": "thinking", "thinking": text, "signature": signed}


def _redacted(data: object) -> dict[str, Any] | None:
    return {"type": "redacted_thinking", "data": data} if isinstance(data, str) else None


def reasoning_block(block: object) -> dict[str, Any] | None:
    """One entry of ``thinking_blocks`` (``thinking`` with its signature, ``redacted_thinking``
    with its data) or of ``reasoning_details`` (``reasoning.text``, ``reasoning.summary``,
    ``reasoning.encrypted``) as a reasoning part's fields; None for anything else."""
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    if kind == "thinking":
        return _thinking(block.get("thinking"), block.get("signature"))
    if kind == "redacted_thinking" or kind == "reasoning.encrypted":
        return _redacted(block.get("data"))
    if kind == "reasoning.text":
        return _thinking(block.get("text"), block.get("signature"))
    if kind == "reasoning.summary":
        return _thinking(block.get("summary"), None)
    return None


def reasoning_parts(message: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The reasoning an OpenAI-compatible server sent on a message, as reasoning parts' fields,
    from the most informative field it sent (:data:`REASONING_KEYS`); None when it sent none
    (OpenAI's own Chat Completions, most answers: four key tests)."""
    for key in ("thinking_blocks", "reasoning_details"):
        blocks = message.get(key)
        if isinstance(blocks, list) and blocks:
            parts = [p for p in map(reasoning_block, blocks) if p is not None]
            if parts:
                return parts
    text = reasoning_text(message)
    return None if text is None else [{"type": "thinking", "thinking": text}]


def reasoning_text(message: Mapping[str, Any]) -> str | None:
    """Reasoning text an OpenAI-compatible server sends beside the content (``reasoning_content``
    from DeepSeek and vLLM, ``reasoning`` from OpenRouter and newer vLLM); OpenAI sends none."""
    text = message.get("reasoning_content")
    if text is None:
        text = message.get("reasoning")
    return text if isinstance(text, str) and text else None


def _vector(raw: object, position: int, provider: str | None) -> list[float]:
    if isinstance(raw, str):
        try:
            data = base64.b64decode(raw, validate=True)
        except ValueError as exc:
            raise malformed(f"embedding {position} is not valid base64", provider=provider) from exc
        if len(data) % 4:
            raise malformed(
                f"embedding {position} is {len(data)} bytes, not whole float32 values",
                provider=provider,
            )
        return list(struct.unpack(f"<{len(data) // 4}f", data))
    if isinstance(raw, list) and all(isinstance(x, int | float) for x in raw):
        return [float(x) for x in raw]
    raise malformed(f"embedding {position} is neither a float list nor base64", provider=provider)


def parse_openai_embeddings_response(
    body: Mapping[str, Any], *, provider: str | None = None
) -> EmbeddingResponse:
    """Vectors in input order (by ``index``), base64 float32 decoded to floats."""
    data = body.get("data")
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise malformed("the embeddings answer has no data list", provider=provider)
    ordered = sorted(enumerate(data), key=lambda item: (item[1].get("index", item[0]), item[0]))
    vectors = [_vector(d.get("embedding"), i, provider) for i, d in ordered]
    usage = body.get("usage")
    return EmbeddingResponse(
        model=str(body.get("model") or ""),
        vectors=vectors,
        usage=usage_from_openai(usage) if isinstance(usage, dict) else Usage(source="estimated"),
    )


def parse_openai_models(body: Mapping[str, Any], *, provider: str) -> list[ModelInfo]:
    """``GET /models``: ids, owners and creation times (capabilities come from config)."""
    data = body.get("data")
    if not isinstance(data, list):
        raise malformed("the models answer has no data list", provider=provider)
    models: list[ModelInfo] = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        created = entry.get("created")
        owner = entry.get("owned_by")
        models.append(
            ModelInfo(
                id=entry["id"],
                provider=provider,
                owned_by=owner if isinstance(owner, str) else None,
                created=created if isinstance(created, int) else None,
            )
        )
    return models
