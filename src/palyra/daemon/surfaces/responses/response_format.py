"""Neutral answers -> OpenAI Response objects and their output items, as pure functions.

Item ids derive from the response id and the item's position (``msg_<id>_0``, ``fc_<id>_1``),
so the whole answer, the streamed one and the stored one name every item the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palyra.daemon.surfaces.responses.reasoning_items import reasoning_item, reasoning_part
from palyra.model import ChatResponse, ErrorEnvelope, FinishReason, Message, Role, TextPart, Usage
from palyra.model.extensions import OPENAI_RESPONSES, Extensions
from palyra.model.messages import ContentPart, ToolCallPart
from palyra.model.responses import Logprobs, TopLogprob
from palyra.providers.openai.responses_payload import passed_item_message

RESPONSE_PREFIX = "resp_"

_INCOMPLETE: dict[FinishReason, str] = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}


@dataclass(frozen=True)
class Skeleton:
    """What every Response object of one request repeats: its id, model, time and echo."""

    id: str
    model: str
    created_at: int
    echo: dict[str, Any]

    def item_id(self, prefix: str, position: int) -> str:
        return f"{prefix}_{self.id.removeprefix(RESPONSE_PREFIX)}_{position}"

    def response(
        self,
        *,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None = None,
        finish: FinishReason | None = None,
        error: ErrorEnvelope | None = None,
        completed_at: int | None = None,
        service_tier: str | None = None,
    ) -> dict[str, Any]:
        reason = _INCOMPLETE.get(finish) if finish is not None else None
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": completed_at,
            "error": None if error is None else response_error(error),
            "incomplete_details": None if reason is None else {"reason": reason},
            "model": self.model,
            "output": output,
            **self.echo,
        }
        if usage is not None:  # an object when present, never null (OpenAPI)
            body["usage"] = usage_json(usage)
        if service_tier is not None:  # the tier that served it, once known
            body["service_tier"] = service_tier
        return body


def status_for(finish: FinishReason) -> str:
    """``incomplete`` when the answer was cut (length or filter), else ``completed``."""
    return "incomplete" if finish in _INCOMPLETE else "completed"


def usage_json(usage: Usage) -> dict[str, Any]:
    """Responses usage; ``input_tokens`` includes the cached part, as OpenAI counts it."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def response_error(envelope: ErrorEnvelope) -> dict[str, Any]:
    """The ``error`` of a failed Response (its ``code`` is one of OpenAI's documented ones)."""
    code = "rate_limit_exceeded" if envelope.http_status == 429 else "server_error"
    return {"code": code, "message": envelope.message}


def _bytes(entry: TopLogprob) -> list[int]:
    return entry.bytes if entry.bytes is not None else list(entry.token.encode())


def logprobs_json(logprobs: Logprobs | None) -> list[dict[str, Any]]:
    """An output text's ``logprobs`` (OpenAI's ``LogProb``: bytes included)."""
    if logprobs is None or not logprobs.content:
        return []
    return [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": _bytes(t),
            "top_logprobs": [
                {"token": a.token, "logprob": a.logprob, "bytes": _bytes(a)} for a in t.top_logprobs
            ],
        }
        for t in logprobs.content
    ]


def delta_logprobs(logprobs: Logprobs | None) -> list[dict[str, Any]]:
    """A text delta's ``logprobs`` (OpenAI's ``ResponseLogProb``: no bytes)."""
    return [
        {
            "token": t["token"],
            "logprob": t["logprob"],
            "top_logprobs": [
                {"token": a["token"], "logprob": a["logprob"]} for a in t["top_logprobs"]
            ],
        }
        for t in logprobs_json(logprobs)
    ]


def text_part(
    text: str, logprobs: Logprobs | None = None, annotations: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "type": "output_text",
        "text": text,
        "annotations": annotations or [],
        "logprobs": logprobs_json(logprobs),
    }


def message_item(
    item_id: str,
    text: str,
    status: str = "completed",
    logprobs: Logprobs | None = None,
    annotations: list[Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [text_part(text, logprobs, annotations)] if status == "completed" else [],
    }


def function_call_item(
    item_id: str, call: ToolCallPart, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if status == "completed" else "",
        "status": status,
    }


def _own(extensions: Extensions | None) -> dict[str, Any]:
    """A Responses upstream's own extension fields (none from any other upstream)."""
    return (
        extensions.fields if extensions is not None and extensions.owner == OPENAI_RESPONSES else {}
    )


def output_items(skeleton: Skeleton, response: ChatResponse) -> list[dict[str, Any]]:
    """A whole answer's items: its reasoning, its text as one message, then one item per
    function call; a Responses upstream's items the contract has no part for (built-in tool
    calls, kinds Palyra does not know) as it sent them, at the positions it gave them."""
    extra = _own(response.extensions)
    foreign = dict(zip(extra.get("output_positions", []), extra.get("output", []), strict=False))
    passed = bool(foreign)
    items: list[dict[str, Any]] = []

    def slot(prefix: str) -> str:
        """The next native item's id, after the upstream's items that come before it."""
        while len(items) in foreign:
            items.append(foreign.pop(len(items)))
        return skeleton.item_id(prefix, len(items))

    for part in response.reasoning:
        items.append(reasoning_item(slot("rs"), part))
    if response.content or not (response.tool_calls or passed):
        annotations = _own(response.message_extensions).get("annotations")
        items.append(
            message_item(
                slot("msg"), response.content, logprobs=response.logprobs, annotations=annotations
            )
        )
    for call in response.tool_calls:
        items.append(function_call_item(slot("fc"), call))
    items += [foreign[at] for at in sorted(foreign)]
    return items


def response_object(
    skeleton: Skeleton, response: ChatResponse, *, completed_at: int
) -> dict[str, Any]:
    """A whole neutral answer as a finished Response object."""
    status = status_for(response.finish_reason)
    body = skeleton.response(
        status=status,
        output=output_items(skeleton, response),
        usage=response.usage,
        finish=response.finish_reason,
        completed_at=completed_at if status == "completed" else None,
        service_tier=response.service_tier or skeleton.echo.get("service_tier"),
    )
    extra = _own(response.extensions).get("response")
    if extra:  # a Responses upstream's undocumented top-level fields, as it sent them
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def output_messages(output: list[dict[str, Any]]) -> list[Message]:
    """A Response's output as neutral history for the next turn of a chain: assistant messages
    holding its reasoning, text and function calls in order, and each item the contract has no
    part for (a built-in tool's call) as a message of its own, for a Responses upstream."""
    messages: list[Message] = []
    parts: list[ContentPart] = []

    def flush() -> None:
        if parts:
            messages.append(Message(role=Role.ASSISTANT, content=list(parts)))
            parts.clear()

    for position, item in enumerate(output):
        kind = item.get("type")
        if kind == "reasoning":
            parts.append(reasoning_part(item, f"output[{position}]"))
        elif kind == "message":
            text = "".join(
                str(p.get("text", "")) for p in item.get("content", []) if isinstance(p, dict)
            )
            if text:
                parts.append(TextPart(text=text))
        elif kind == "function_call":
            parts.append(
                ToolCallPart(
                    id=str(item["call_id"]),
                    name=str(item["name"]),
                    arguments=str(item.get("arguments") or "{}"),
                )
            )
        else:
            flush()
            messages.append(passed_item_message(item))
    flush()
    return messages
