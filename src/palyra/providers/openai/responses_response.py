"""An OpenAI Response object -> neutral ``ChatResponse`` (pure).

Reasoning items become thinking parts (summary text, ``encrypted_content`` as the signature),
message items the text, ``function_call`` items tool calls. ``incomplete`` answers map to
``length`` or ``content_filter``; a ``failed`` one is raised as the error it carries. What the
contract has no part for travels in the answer's extensions (owned by ``openai_responses``, for
a Responses client): other items (built-in tools' calls, kinds Palyra does not know) with their
positions in ``output``, the text's ``annotations``, and top-level fields the Response object
does not document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from palyra.model import (
    ChatResponse,
    FinishReason,
    Logprobs,
    PalyraError,
    ReasoningPart,
    ThinkingPart,
    TokenLogprob,
    ToolCallPart,
    TopLogprob,
)
from palyra.model.extensions import OPENAI_RESPONSES, Extensions
from palyra.providers.errors import classify_http_error
from palyra.providers.openai.response import malformed

# A reasoning item's signature is its id and its encrypted content together: OpenAI needs both
# back (the id is required on input items), and the contract keeps one opaque signature.
SIGNATURE_MARK = "openai-reasoning:"

# The Response object's documented fields (OpenAI's OpenAPI ``Response``): the surface writes
# its own; any other top-level field of an upstream answer comes back to a Responses client.
RESPONSE_FIELDS = frozenset(
    {
        "background", "completed_at", "conversation", "created_at", "error", "id",
        "incomplete_details", "instructions", "max_output_tokens", "max_tool_calls", "metadata",
        "model", "object", "output", "output_text", "parallel_tool_calls", "previous_response_id",
        "prompt", "prompt_cache_key", "prompt_cache_retention", "reasoning", "safety_identifier",
        "service_tier", "status", "store", "temperature", "text", "tool_choice", "tools",
        "top_logprobs", "top_p", "truncation", "usage", "user",
    }
)  # fmt: skip

_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


def _count(data: object, key: str) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


def usage_fields(usage: object) -> dict[str, Any]:
    """:class:`Usage` fields from Responses usage (``input_tokens`` includes the cached part)."""
    if not isinstance(usage, dict):
        return {"source": "estimated"}
    return {
        "input_tokens": _count(usage, "input_tokens"),
        "output_tokens": _count(usage, "output_tokens"),
        "cached_input_tokens": _count(usage.get("input_tokens_details"), "cached_tokens"),
        "reasoning_tokens": _count(usage.get("output_tokens_details"), "reasoning_tokens"),
        "source": "provider",
    }


def summary_text(item: Mapping[str, Any]) -> str:
    parts = item.get("summary")
    if not isinstance(parts, list):
        return ""
    return "\n\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def pack_signature(item_id: object, encrypted: object) -> str | None:
    """The neutral signature of a reasoning item: None when the upstream sent no encrypted
    content (reasoning that cannot be sent back)."""
    if not isinstance(encrypted, str) or not encrypted:
        return None
    return f"{SIGNATURE_MARK}{item_id if isinstance(item_id, str) else ''}:{encrypted}"


def unpack_signature(signature: str | None) -> tuple[str, str] | None:
    """(item id, encrypted content) of a signature OpenAI issued; None for any other one."""
    if signature is None or not signature.startswith(SIGNATURE_MARK):
        return None
    item_id, sep, encrypted = signature[len(SIGNATURE_MARK) :].partition(":")
    return (item_id, encrypted) if sep and encrypted else None


def reasoning_of(item: Mapping[str, Any]) -> ThinkingPart:
    return ThinkingPart(
        thinking=summary_text(item),
        signature=pack_signature(item.get("id"), item.get("encrypted_content")),
    )


def logprobs_of(raw: object) -> Logprobs | None:
    """OpenAI's ``LogProb`` list (whole answers) or ``ResponseLogProb`` list (deltas) as neutral
    logprobs; None when there are none."""
    if not isinstance(raw, list) or not raw:
        return None
    tokens: list[TokenLogprob] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        alternatives = entry.get("top_logprobs")
        tokens.append(
            TokenLogprob(
                token=str(entry.get("token", "")),
                logprob=float(entry.get("logprob") or 0.0),
                bytes=entry.get("bytes") if isinstance(entry.get("bytes"), list) else None,
                top_logprobs=[
                    TopLogprob(
                        token=str(a.get("token", "")),
                        logprob=float(a.get("logprob") or 0.0),
                        bytes=a.get("bytes") if isinstance(a.get("bytes"), list) else None,
                    )
                    for a in (alternatives if isinstance(alternatives, list) else [])
                    if isinstance(a, dict)
                ],
            )
        )
    return Logprobs(content=tokens)


def message_text(item: Mapping[str, Any]) -> str:
    content = item.get("content")
    if not isinstance(content, list):
        return ""
    return "".join(
        str(p.get("text") if p.get("type") == "output_text" else p.get("refusal", ""))
        for p in content
        if isinstance(p, dict) and p.get("type") in ("output_text", "refusal")
    )


def finish_of(status: object, details: object, *, has_tool_calls: bool) -> FinishReason:
    if status == "incomplete" and isinstance(details, dict):
        mapped = _INCOMPLETE.get(str(details.get("reason")))
        if mapped is not None:
            return mapped
    return "tool_calls" if has_tool_calls else "stop"


def failure(body: Mapping[str, Any], *, provider: str | None, model: str | None) -> PalyraError:
    """A ``failed`` response (or an ``error`` stream event) as the error it reports."""
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    code = error.get("code") if isinstance(error, dict) else None
    status = 429 if code == "rate_limit_exceeded" else 500
    payload = orjson.dumps({"error": error})
    return PalyraError(classify_http_error(status, payload, {}, provider=provider, model=model))


def parse_openai_responses_response(
    body: Mapping[str, Any],
    *,
    provider: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ChatResponse:
    """A whole Response object as a neutral answer; ``headers`` are the answer's headers a
    client reads (rate limits, request id)."""
    if body.get("status") == "failed":
        raise failure(body, provider=provider, model=str(body.get("model") or ""))
    output = body.get("output")
    if not isinstance(output, list):
        raise malformed("the response has no output list", provider=provider)
    reasoning: list[ReasoningPart] = []
    texts: list[str] = []
    logprobs: Logprobs | None = None
    calls: list[ToolCallPart] = []
    foreign: list[dict[str, Any]] = []  # items the contract has no part for (built-in tools')
    positions: list[int] = []
    annotations: list[Any] = []
    for position, item in enumerate(output):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "reasoning":
            reasoning.append(reasoning_of(item))
        elif kind == "message":
            texts.append(message_text(item))
            for part in item.get("content") or []:
                if not isinstance(part, dict):
                    continue
                found = logprobs_of(part.get("logprobs"))
                if found is not None:
                    logprobs = found if logprobs is None else logprobs + found
                if part.get("annotations"):
                    annotations += part["annotations"]
        elif kind == "function_call":
            calls.append(
                ToolCallPart(
                    id=str(item.get("call_id") or item.get("id") or f"call_{len(calls)}"),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("arguments") or "{}"),
                )
            )
        else:
            foreign.append(item)
            positions.append(position)
    created = body.get("created_at")
    tier = body.get("service_tier")
    return ChatResponse.model_validate(
        {
            "id": str(body.get("id") or ""),
            "model": str(body.get("model") or ""),
            "reasoning": reasoning,
            "content": "".join(texts),
            "tool_calls": calls,
            "finish_reason": finish_of(
                body.get("status"), body.get("incomplete_details"), has_tool_calls=bool(calls)
            ),
            "usage": usage_fields(body.get("usage")),
            "provider": provider,
            "created": int(created) if isinstance(created, int | float) else None,
            "logprobs": logprobs,
            "service_tier": tier if isinstance(tier, str) else None,
            "headers": dict(headers or {}),
            "extensions": _extensions(body, foreign, positions),
            "message_extensions": Extensions(
                owner=OPENAI_RESPONSES, fields={"annotations": annotations}
            )
            if annotations
            else None,
        }
    )


def _extensions(
    body: Mapping[str, Any], foreign: list[dict[str, Any]], positions: list[int]
) -> Extensions | None:
    """The answer's items and top-level fields the contract does not model (None for the
    usual answer: one key-set test)."""
    extra = (
        {k: v for k, v in body.items() if k not in RESPONSE_FIELDS}
        if not (body.keys() <= RESPONSE_FIELDS)
        else {}
    )
    if not foreign and not extra:
        return None
    fields: dict[str, Any] = {}
    if foreign:
        fields["output"] = foreign
        fields["output_positions"] = positions
    if extra:
        fields["response"] = extra
    return Extensions(owner=OPENAI_RESPONSES, fields=fields)
