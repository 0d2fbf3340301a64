"""Fold a stream of events into the same ``ChatResponse`` a non-streamed call returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from palyra.model.errors import PalyraError
from palyra.model.events import (
    ErrorEvent,
    MessageEnd,
    MessageStart,
    RedactedThinking,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageEvent,
)
from palyra.model.messages import ReasoningPart, RedactedThinkingPart, ThinkingPart, ToolCallPart
from palyra.model.responses import ChatResponse, FinishReason, Logprobs, Usage


@dataclass
class _PendingCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class _PendingThinking:
    text: list[str] = field(default_factory=list)
    signature: list[str] = field(default_factory=list)
    redacted: str | None = None

    def part(self) -> ReasoningPart:
        if self.redacted is not None:
            return RedactedThinkingPart(data=self.redacted)
        signature = "".join(self.signature) if self.signature else None
        return ThinkingPart(thinking="".join(self.text), signature=signature)


@dataclass
class StreamAccumulator:
    """Collects events; ``response()`` gives the whole answer. Usage events replace, not add."""

    id: str = ""
    model: str = ""
    created: int | None = None
    text: list[str] = field(default_factory=list)
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    reasoning: dict[int, _PendingThinking] = field(default_factory=dict)
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None
    error: ErrorEvent | None = None
    logprobs: Logprobs | None = None
    service_tier: str | None = None
    system_fingerprint: str | None = None

    def add(self, event: StreamEvent) -> None:
        match event:
            case MessageStart():
                self.id, self.model, self.created = event.id, event.model, event.created
                self.service_tier = event.service_tier
                self.system_fingerprint = event.system_fingerprint
            case TextDelta():
                self.text.append(event.text)
                if event.logprobs is not None:
                    self.logprobs = (
                        event.logprobs if self.logprobs is None else self.logprobs + event.logprobs
                    )
            case ThinkingDelta():
                self.reasoning.setdefault(event.index, _PendingThinking()).text.append(
                    event.thinking
                )
            case SignatureDelta():
                self.reasoning.setdefault(event.index, _PendingThinking()).signature.append(
                    event.signature
                )
            case RedactedThinking():
                self.reasoning.setdefault(event.index, _PendingThinking()).redacted = event.data
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
                self.stop_sequence = event.stop_sequence
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
            reasoning=[r.part() for _, r in sorted(self.reasoning.items())],
            content="".join(self.text),
            tool_calls=calls,
            finish_reason=self.finish_reason or ("tool_calls" if calls else "stop"),
            stop_sequence=self.stop_sequence,
            usage=self.usage or Usage(source="estimated"),
            created=self.created,
            logprobs=self.logprobs,
            service_tier=self.service_tier,
            system_fingerprint=self.system_fingerprint,
        )
