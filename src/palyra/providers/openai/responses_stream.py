"""OpenAI Responses SSE payloads -> neutral stream events, one ``data:`` payload at a time (pure).

``response.created`` starts the answer; output text deltas are text, summary deltas of a
reasoning item are thinking (its ``encrypted_content``, on ``output_item.done``, the
signature); a ``function_call`` item is a tool call whose arguments arrive as deltas.
``response.completed`` / ``response.incomplete`` carry the usage and end it; ``error`` and
``response.failed`` are raised as the error they report. Every other event (built-in tools'
items and their ``response.web_search_call.*``-style events, annotations, event types Palyra does
not know) travels as an :class:`ExtensionEvent` owned by ``openai_responses``, in its place: a
Responses client gets it as sent, other clients' encoders leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from palyra.model import (
    ExtensionEvent,
    MessageEnd,
    MessageStart,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageEvent,
)
from palyra.model.extensions import OPENAI_RESPONSES
from palyra.providers.errors import stream_ended_early
from palyra.providers.openai.response import malformed
from palyra.providers.openai.responses_response import (
    RESPONSE_FIELDS,
    failure,
    finish_of,
    logprobs_of,
    pack_signature,
    usage_fields,
)

_ENDS = ("response.completed", "response.incomplete")
RESPONSE_FIELDS_EVENT = "palyra.response_fields"
"""The ExtensionEvent holding the final Response object's undocumented top-level fields (never
sent as an event: the surface puts them into its own final Response object)."""
# Item kinds the contract models; any other item (a built-in tool's call, a future kind) passes
# through whole, every event about it included.
_MODELLED_ITEMS = frozenset({"message", "function_call", "reasoning"})
# Events of modelled items that the neutral events stand for (the surface rebuilds them); any
# other event reaches a Responses client as sent.
_REBUILT = frozenset(
    {
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.refusal.delta",
        "response.refusal.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        *_ENDS,
    }
)


def _passed(kind: str, event: dict[str, Any]) -> ExtensionEvent:
    """An event for a Responses client as sent (built without a second validation: both
    fields come from the wire as they are)."""
    return ExtensionEvent.model_construct(owner=OPENAI_RESPONSES, event=kind, data=event)


@dataclass
class _Item:
    """One output item being streamed: its kind and its position among calls or reasoning."""

    kind: str
    index: int
    foreign: bool = False
    arguments_seen: bool = False
    summary_parts: int = 0


class OpenAIResponsesStreamParser:
    """Stateful and pure: feed each SSE ``data`` payload, get the events it completes.

    The same surface as :class:`OpenAIStreamParser` (``started``, ``done``, ``finish()``), so the
    provider's streaming loop serves both APIs.
    """

    def __init__(self, *, provider: str | None = None, model: str | None = None) -> None:
        self.provider = provider
        self.model = model
        self.started = False
        self.done = False
        # The upstream answer's headers a client reads, set by the provider before the first
        # feed; they ride on MessageStart.
        self.headers: dict[str, str] = {}
        self._items: dict[int, _Item] = {}
        self._calls = 0
        self._thoughts = 0

    def feed(self, data: str) -> list[StreamEvent]:
        if self.done:
            return []
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise malformed(
                f"a Responses stream event is not valid JSON ({exc})", provider=self.provider
            ) from exc
        if not isinstance(event, dict):
            raise malformed("a Responses stream event is not an object", provider=self.provider)
        kind = event.get("type")
        if kind == "error":
            raise failure(event, provider=self.provider, model=self.model)
        if kind == "response.failed":
            failed = event.get("response")
            raise failure(
                failed if isinstance(failed, dict) else {}, provider=self.provider, model=self.model
            )
        out: list[StreamEvent] = []
        if not self.started:
            if kind != "response.created":
                raise malformed(
                    f"the Responses stream began with {kind!r}, not response.created",
                    provider=self.provider,
                )
            self.started = True
            raw = event.get("response")
            body: dict[str, Any] = raw if isinstance(raw, dict) else {}
            created = body.get("created_at")
            tier = body.get("service_tier")
            out.append(
                MessageStart(
                    id=str(body.get("id") or ""),
                    model=str(body.get("model") or self.model or ""),
                    created=int(created) if isinstance(created, int | float) else None,
                    headers=self.headers,
                    service_tier=tier if isinstance(tier, str) and tier != "auto" else None,
                )
            )
            return out
        self._event(str(kind), event, out)
        return out

    def _event(self, kind: str, event: dict[str, Any], out: list[StreamEvent]) -> None:
        position = event.get("output_index")
        item = self._items.get(position) if isinstance(position, int) else None
        if kind not in _REBUILT or (item is not None and item.foreign):
            out.append(_passed(kind, event))
        elif kind == "response.output_item.added" and isinstance(position, int):
            self._added(position, event, out)
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                out.append(TextDelta(text=delta, logprobs=logprobs_of(event.get("logprobs"))))
        elif kind == "response.reasoning_summary_text.delta" and item is not None:
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                out.append(ThinkingDelta(index=item.index, thinking=delta))
        elif kind == "response.reasoning_summary_part.added" and item is not None:
            if item.summary_parts:
                out.append(ThinkingDelta(index=item.index, thinking="\n\n"))
            item.summary_parts += 1
        elif kind == "response.function_call_arguments.delta" and item is not None:
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                item.arguments_seen = True
                out.append(ToolCallDelta(index=item.index, arguments=delta))
        elif kind == "response.output_item.done" and item is not None:
            self._item_done(item, event.get("item"), out)
        elif kind in _ENDS:
            self._end(event.get("response"), out)

    def _added(self, position: int, event: dict[str, Any], out: list[StreamEvent]) -> None:
        raw = event.get("item")
        item = raw if isinstance(raw, dict) else {}
        kind = str(item.get("type"))
        if kind == "function_call":
            state = self._items[position] = _Item(kind, self._calls)
            self._calls += 1
            call_id = item.get("call_id") or item.get("id") or f"call_{state.index}"
            out.append(
                ToolCallStart(index=state.index, id=str(call_id), name=str(item.get("name") or ""))
            )
        elif kind == "reasoning":
            self._items[position] = _Item(kind, self._thoughts)
            self._thoughts += 1
        elif kind in _MODELLED_ITEMS:
            self._items[position] = _Item(kind, -1)
        else:  # a built-in tool's item, or a kind Palyra does not know: passed through whole
            self._items[position] = _Item(kind, -1, foreign=True)
            out.append(_passed("response.output_item.added", event))

    def _item_done(self, state: _Item, raw: object, out: list[StreamEvent]) -> None:
        item = raw if isinstance(raw, dict) else {}
        if state.kind == "function_call":
            arguments = item.get("arguments")
            if not state.arguments_seen and isinstance(arguments, str) and arguments:
                out.append(ToolCallDelta(index=state.index, arguments=arguments))
            out.append(ToolCallEnd(index=state.index))
        elif state.kind == "reasoning":
            signature = pack_signature(item.get("id"), item.get("encrypted_content"))
            if not state.summary_parts:
                out.append(ThinkingDelta(index=state.index, thinking=""))
            if signature is not None:
                out.append(SignatureDelta(index=state.index, signature=signature))

    def _end(self, raw: object, out: list[StreamEvent]) -> None:
        body = raw if isinstance(raw, dict) else {}
        self.done = True
        if not body.keys() <= RESPONSE_FIELDS:  # undocumented top-level fields, for the client
            extra = {k: v for k, v in body.items() if k not in RESPONSE_FIELDS}
            out.append(_passed(RESPONSE_FIELDS_EVENT, {"response": extra}))
        out.append(UsageEvent(usage=Usage(**usage_fields(body.get("usage")))))
        reason = finish_of(
            body.get("status"), body.get("incomplete_details"), has_tool_calls=self._calls > 0
        )
        out.append(MessageEnd(finish_reason=reason))

    def finish(self) -> list[StreamEvent]:
        """The byte stream ended: fine after ``response.completed``, otherwise a failure."""
        if self.done:
            return []
        where = self.provider or "openai"
        raise stream_ended_early(
            self.provider,
            self.model,
            started=self.started,
            before_any=f"{where}: the Responses stream ended before any event",
            cut=f"{where}: the Responses stream ended without response.completed; "
            "the answer is incomplete",
        )
