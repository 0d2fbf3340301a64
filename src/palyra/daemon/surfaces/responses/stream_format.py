"""Neutral stream events -> the Responses API's SSE sequence, with a ``sequence_number`` each.

``response.created`` and ``response.in_progress`` open the stream; text becomes a message item
(``output_item.added``, ``content_part.added``, ``output_text.delta``... ``output_text.done``,
``content_part.done``, ``output_item.done``), each tool call a ``function_call`` item with its
argument deltas; ``response.completed`` (or ``response.incomplete`` when the answer was cut)
closes it, holding the same Response object a whole answer would be. A Responses upstream's
events the contract does not model (built-in tools' items and their events, annotations, event
types Palyra does not know) come through as sent, in their place, renumbered: their
``output_index`` is this stream's and their ``sequence_number`` follows ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from palyra.daemon.surfaces.openai.chat_format import error_code
from palyra.daemon.surfaces.responses.reasoning_items import reasoning_item
from palyra.daemon.surfaces.responses.response_format import (
    Skeleton,
    delta_logprobs,
    function_call_item,
    message_item,
    status_for,
    text_part,
)
from palyra.model import (
    ErrorEnvelope,
    ErrorEvent,
    ExtensionEvent,
    FinishReason,
    MessageEnd,
    MessageStart,
    RedactedThinking,
    RedactedThinkingPart,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    Usage,
    UsageEvent,
)
from palyra.model.extensions import OPENAI_RESPONSES
from palyra.model.responses import Logprobs
from palyra.providers.openai.responses_stream import RESPONSE_FIELDS_EVENT


def sse(payload: dict[str, Any]) -> bytes:
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


@dataclass
class _Open:
    """An output item still being streamed."""

    position: int
    item_id: str
    chunks: list[str] = field(default_factory=list)
    call: ToolCallPart | None = None
    signature: list[str] = field(default_factory=list)
    logprobs: Logprobs | None = None
    annotations: list[Any] = field(default_factory=list)


class ResponseEventEncoder:
    """Turns neutral events into Responses SSE frames, one call per event; ``finish()`` sends
    the closing event and leaves the finished Response object in ``final``."""

    def __init__(self, skeleton: Skeleton) -> None:
        self.skeleton = skeleton
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._message: _Open | None = None
        self._thinking: _Open | None = None
        self._thinking_index: int | None = None
        self._calls: dict[int, _Open] = {}
        self._foreign: dict[int, int] = {}  # a passed item's upstream output_index -> ours
        self._extra: dict[str, Any] = {}  # the upstream Response's undocumented fields
        self._usage: Usage | None = None
        self._tier: str | None = skeleton.echo.get("service_tier")
        self._finish: FinishReason | None = None
        self.final: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse(payload)

    def _new_item(self, item: dict[str, Any]) -> int:
        self._output.append(item)
        return len(self._output) - 1

    def _open_thinking(self, index: int) -> bytes:
        frames = self._close_open_items()
        position = len(self._output)
        item_id = self.skeleton.item_id("rs", position)
        item = reasoning_item(item_id, ThinkingPart(thinking=""), status="in_progress")
        self._new_item(item)
        self._thinking, self._thinking_index = _Open(position, item_id), index
        return frames + self._event("response.output_item.added", output_index=position, item=item)

    def _close_thinking(self) -> bytes:
        open_ = self._thinking
        if open_ is None:
            return b""
        self._thinking = self._thinking_index = None
        text = "".join(open_.chunks)
        part = ThinkingPart(thinking=text, signature="".join(open_.signature) or None)
        item = reasoning_item(open_.item_id, part)
        self._output[open_.position] = item
        where = {"item_id": open_.item_id, "output_index": open_.position, "summary_index": 0}
        frames = b""
        if open_.chunks:
            summary = {"type": "summary_text", "text": text}
            frames += self._event("response.reasoning_summary_text.done", **where, text=text)
            frames += self._event("response.reasoning_summary_part.done", **where, part=summary)
        return frames + self._event(
            "response.output_item.done", output_index=open_.position, item=item
        )

    def _thinking_text(self, event: ThinkingDelta) -> bytes:
        frames = b""
        if self._thinking is None or self._thinking_index != event.index:
            frames += self._open_thinking(event.index)
        open_ = self._thinking
        assert open_ is not None
        if not event.thinking:
            return frames
        where = {"item_id": open_.item_id, "output_index": open_.position, "summary_index": 0}
        if not open_.chunks:
            empty = {"type": "summary_text", "text": ""}
            frames += self._event("response.reasoning_summary_part.added", **where, part=empty)
        open_.chunks.append(event.thinking)
        return frames + self._event(
            "response.reasoning_summary_text.delta", **where, delta=event.thinking
        )

    def _redacted(self, event: RedactedThinking) -> bytes:
        frames = self._close_open_items()
        position = len(self._output)
        item = reasoning_item(
            self.skeleton.item_id("rs", position), RedactedThinkingPart(data=event.data)
        )
        self._new_item(item)
        return (
            frames
            + self._event("response.output_item.added", output_index=position, item=item)
            + self._event("response.output_item.done", output_index=position, item=item)
        )

    def _close_open_items(self) -> bytes:
        return self._close_thinking() + self._close_message()

    def _open_message(self) -> bytes:
        head = self._close_thinking()
        position = len(self._output)
        item_id = self.skeleton.item_id("msg", position)
        item = message_item(item_id, "", status="in_progress")
        self._new_item(item)
        self._message = _Open(position, item_id)
        return (
            head
            + self._event("response.output_item.added", output_index=position, item=item)
            + self._event(
                "response.content_part.added",
                item_id=item_id,
                output_index=position,
                content_index=0,
                part=text_part(""),
            )
        )

    def _close_message(self) -> bytes:
        open_ = self._message
        if open_ is None:
            return b""
        self._message = None
        text = "".join(open_.chunks)
        where = {"item_id": open_.item_id, "output_index": open_.position, "content_index": 0}
        item = message_item(
            open_.item_id, text, logprobs=open_.logprobs, annotations=open_.annotations
        )
        self._output[open_.position] = item
        done = delta_logprobs(open_.logprobs)
        return (
            self._event("response.output_text.done", **where, text=text, logprobs=done)
            + self._event("response.content_part.done", **where, part=item["content"][0])
            + self._event("response.output_item.done", output_index=open_.position, item=item)
        )

    def _close_call(self, index: int) -> bytes:
        open_ = self._calls.pop(index, None)
        if open_ is None or open_.call is None:
            return b""
        call = open_.call.model_copy(update={"arguments": "".join(open_.chunks) or "{}"})
        item = function_call_item(open_.item_id, call)
        self._output[open_.position] = item
        return self._event(
            "response.function_call_arguments.done",
            item_id=open_.item_id,
            output_index=open_.position,
            name=call.name,
            arguments=call.arguments,
        ) + self._event("response.output_item.done", output_index=open_.position, item=item)

    def _in_progress(self) -> dict[str, Any]:
        return self.skeleton.response(status="in_progress", output=[])

    def encode(self, event: StreamEvent) -> bytes:
        """The SSE bytes for one event (empty when it has no Responses counterpart)."""
        match event:
            case MessageStart():
                if event.usage is not None:
                    self._usage = event.usage
                if event.service_tier is not None:
                    self._tier = event.service_tier
                return self._event("response.created", response=self._in_progress()) + self._event(
                    "response.in_progress", response=self._in_progress()
                )
            case TextDelta():
                if not event.text:
                    return b""
                head = b"" if self._message is not None else self._open_message()
                open_ = self._message
                assert open_ is not None
                open_.chunks.append(event.text)
                if event.logprobs is not None:
                    seen = open_.logprobs
                    open_.logprobs = event.logprobs if seen is None else seen + event.logprobs
                return head + self._event(
                    "response.output_text.delta",
                    item_id=open_.item_id,
                    output_index=open_.position,
                    content_index=0,
                    delta=event.text,
                    logprobs=delta_logprobs(event.logprobs),
                )
            case ThinkingDelta():
                return self._thinking_text(event)
            case SignatureDelta():
                if self._thinking is None or self._thinking_index != event.index:
                    head = self._open_thinking(event.index)
                else:
                    head = b""
                assert self._thinking is not None
                self._thinking.signature.append(event.signature)
                return head
            case RedactedThinking():
                return self._redacted(event)
            case ToolCallStart():
                head = self._close_open_items()
                position = len(self._output)
                item_id = self.skeleton.item_id("fc", position)
                call = ToolCallPart(id=event.id, name=event.name, arguments="")
                item = function_call_item(item_id, call, status="in_progress")
                self._new_item(item)
                self._calls[event.index] = _Open(position, item_id, call=call)
                return head + self._event(
                    "response.output_item.added", output_index=position, item=item
                )
            case ToolCallDelta():
                open_ = self._calls.get(event.index)
                if open_ is None or not event.arguments:
                    return b""
                open_.chunks.append(event.arguments)
                return self._event(
                    "response.function_call_arguments.delta",
                    item_id=open_.item_id,
                    output_index=open_.position,
                    delta=event.arguments,
                )
            case ToolCallEnd():
                return self._close_call(event.index)
            case UsageEvent():
                self._usage = event.usage
                return b""
            case MessageEnd():
                self._finish = event.finish_reason
                return self._close_all()
            case ErrorEvent():
                return self.error(event.error)
            case ExtensionEvent():
                if event.owner == OPENAI_RESPONSES:
                    return self._passed(event.event, event.data)
        return b""

    def _passed(self, kind: str, data: dict[str, Any]) -> bytes:
        """A Responses upstream's own event, as sent, with this stream's numbering."""
        if kind == RESPONSE_FIELDS_EVENT:  # for the final Response object, not an event
            extra = data.get("response")
            self._extra = extra if isinstance(extra, dict) else {}
            return b""
        fields = {k: v for k, v in data.items() if k != "type" and k != "sequence_number"}
        upstream = data.get("output_index")
        if not isinstance(upstream, int):
            return self._event(kind, **fields)
        position = self._foreign.get(upstream)
        if position is None and kind == "response.output_item.added":
            frames = self._close_open_items()
            item = data.get("item")
            position = self._new_item(item if isinstance(item, dict) else {})
            self._foreign[upstream] = position
            return frames + self._event(kind, **{**fields, "output_index": position})
        if position is not None:
            if kind == "response.output_item.done" and isinstance(data.get("item"), dict):
                self._output[position] = data["item"]
            return self._event(kind, **{**fields, "output_index": position})
        # About an item the contract models (an annotation of the text): the one open here.
        open_ = self._message or self._thinking
        if open_ is None:
            return b""
        if kind == "response.output_text.annotation.added" and open_ is self._message:
            open_.annotations.append(data.get("annotation"))
        return self._event(
            kind, **{**fields, "output_index": open_.position, "item_id": open_.item_id}
        )

    def _close_all(self) -> bytes:
        frames = self._close_open_items()
        for index in sorted(self._calls):
            frames += self._close_call(index)
        return frames

    def finish(self, completed_at: int) -> bytes:
        """The closing event (``response.completed``, or ``response.incomplete``)."""
        frames = self._close_all()
        finish = self._finish or "stop"
        status = status_for(finish)
        self.final = self.skeleton.response(
            status=status,
            output=list(self._output),
            usage=self._usage or Usage(source="estimated"),
            finish=finish,
            completed_at=completed_at if status == "completed" else None,
            service_tier=self._tier,
        )
        if self._extra:
            self.final.update({k: v for k, v in self._extra.items() if k not in self.final})
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return frames + self._event(kind, response=self.final)

    def error(self, envelope: ErrorEnvelope) -> bytes:
        """An ``error`` event: the stream failed after it started."""
        return self._event(
            "error",
            code=error_code(envelope),
            message=envelope.message,
            param=envelope.param,
        )
