"""Fold a stream of events into the same ``ChatResponse`` a non-streamed call returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from palyra.model.errors import PalyraError
from palyra.model.events import (
    ErrorEvent,
    MessageEnd,
    MessageStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageEvent,
)
from palyra.model.messages import ToolCallPart
from palyra.model.responses import ChatResponse, FinishReason, Usage


@dataclass
class _PendingCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAccumulator:
    """Collects events; ``response()`` gives the whole answer. Usage events replace, not add."""

    id: str = ""
    model: str = ""
    created: int | None = None
    text: list[str] = field(default_factory=list)
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    error: ErrorEvent | None = None

    def add(self, event: StreamEvent) -> None:
        match event:
            case MessageStart():
                self.id, self.model, self.created = event.id, event.model, event.created
            case TextDelta():
                self.text.append(event.text)
            case ToolCallStart():
                self.calls[event.index] = _PendingCall(event.id, event.name)
            case ToolCallDelta():
                self.calls[event.index].arguments.append(event.arguments)
            case ToolCallEnd():
                pass
            case UsageEvent():
                self.usage = event.usage
            case MessageEnd():
                self.finish_reason = event.finish_reason
            case ErrorEvent():
                self.error = event

    def extend(self, events: Iterable[StreamEvent]) -> StreamAccumulator:
        for event in events:
            self.add(event)
        return self

    def response(self) -> ChatResponse:
        if self.error is not None:
            raise PalyraError(self.error.error)
        calls = [
            ToolCallPart(id=c.id, name=c.name, arguments="".join(c.arguments) or "{}")
            for _, c in sorted(self.calls.items())
        ]
        return ChatResponse(
            id=self.id,
            model=self.model,
            content="".join(self.text),
            tool_calls=calls,
            finish_reason=self.finish_reason or ("tool_calls" if calls else "stop"),
            usage=self.usage or Usage(source="estimated"),
            created=self.created,
        )
