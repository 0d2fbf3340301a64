"""Anthropic Messages SSE -> neutral stream events, one SSE event at a time (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from palyra.model import (
    ExtensionEvent,
    FinishReason,
    MessageEnd,
    MessageStart,
    PalyraError,
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
from palyra.model.extensions import ANTHROPIC_MESSAGES, Extensions
from palyra.providers.anthropic.response import (
    finish_reason,
    load_json_object,
    malformed,
    service_tier,
    usage_extensions,
    usage_from_anthropic,
)
from palyra.providers.errors import classify_http_error, stream_ended_early

# The HTTP status Anthropic uses for each error type, for errors that arrive inside a stream.
ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_TEXT_START_KEYS = frozenset({"type", "text"})
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


@dataclass
class _ToolBlock:
    index: int
    start_input: Any
    streamed: bool = False


@dataclass
class AnthropicStreamParser:
    """Feed each SSE ``(event, data)``; get the neutral events it means.

    Tool calls are numbered over tool blocks only, and reasoning parts over thinking and
    redacted thinking blocks only, so text blocks between them leave no gaps.
    Usage from ``message_start`` (input, cache) and ``message_delta`` (output, sometimes final
    input) is merged and sent once, just before ``MessageEnd``.
    """

    provider: str | None = None
    model: str | None = None
    started: bool = False
    stopped: bool = False
    # The answer's headers a client reads, set by the provider; they ride on MessageStart.
    headers: dict[str, str] = field(default_factory=dict)
    _usage: dict[str, Any] = field(default_factory=dict)
    _tools: dict[int, _ToolBlock] = field(default_factory=dict)
    _thinking: dict[int, int] = field(default_factory=dict)
    # Upstream indexes of blocks of types the contract does not model (server tool use and
    # results): their start, deltas and stop pass as extension events.
    _foreign: set[int] = field(default_factory=set)
    # Upstream indexes of text blocks with fields of their own (``citations``): opened and
    # closed as sent, their text still neutral text.
    _kept_text: set[int] = field(default_factory=set)
    _usage_kept: dict[str, Any] = field(default_factory=dict)
    _stop_reason: str | None = None
    _stop_sequence: str | None = None

    def feed(self, event: str, data: str) -> list[StreamEvent]:
        if event == "ping" and not self.started:
            return []
        payload = load_json_object(data, f"the stream event {event!r}", provider=self.provider)
        kind = payload.get("type") if event == "message" else event
        if kind == "error":
            raise self._error(payload)
        if self.stopped:
            return []
        handler = _HANDLERS.get(str(kind))
        if handler is not None:
            return handler(self, payload)
        if not self.started:
            return []
        # An event the contract does not know (``ping`` too): kept, in order, for an Anthropic
        # client.
        return [_kept(str(kind), payload)]

    def finish(self) -> list[StreamEvent]:
        """End of the byte stream: fine after ``message_stop``, an interruption otherwise."""
        if self.stopped:
            return []
        where = self.provider or "anthropic"
        raise stream_ended_early(
            self.provider,
            self.model,
            started=self.started,
            before_any=f"{where}: the stream ended before any event arrived",
            cut=f"{where}: the stream ended without message_stop; the answer is incomplete",
        )

    def _error(self, payload: dict[str, Any]) -> PalyraError:
        err = payload.get("error")
        err_type = err.get("type") if isinstance(err, dict) else None
        status = ERROR_TYPE_STATUS.get(err_type, 500) if isinstance(err_type, str) else 500
        envelope = classify_http_error(
            status, orjson.dumps(payload), {}, provider=self.provider, model=self.model
        )
        return PalyraError(envelope)

    def _merge_usage(self, usage: object) -> None:
        if isinstance(usage, dict):
            for key in _USAGE_KEYS:
                value = usage.get(key)
                if isinstance(value, int):
                    self._usage[key] = value
            kept = usage_extensions(usage)
            if kept is not None:
                self._usage_kept.update(kept.fields)
            split = usage.get("cache_creation")
            if isinstance(split, dict):  # cache writes by lifetime (message_start has them)
                self._usage["cache_creation"] = split

    def _message_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        message = payload.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("id"), str):
            raise malformed("message_start has no message id", provider=self.provider)
        self.started = True
        self.model = str(message.get("model") or self.model or "")
        self._merge_usage(message.get("usage"))
        early = usage_from_anthropic(self._usage) if "input_tokens" in self._usage else None
        tier = service_tier(message.get("usage"))
        return [
            MessageStart(
                id=message["id"],
                model=self.model,
                usage=early,
                service_tier=tier,
                headers=self.headers,
            )
        ]

    def _block_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        block = payload.get("content_block")
        index = payload.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            raise malformed("content_block_start has no block or index", provider=self.provider)
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            events: list[StreamEvent] = []
            if not block.keys() <= _TEXT_START_KEYS:
                self._kept_text.add(index)
                opened = {**payload, "content_block": {**block, "text": ""}}
                events.append(_kept("content_block_start", opened))
            if isinstance(text, str) and text:
                events.append(TextDelta(text=text))
            return events
        if kind == "thinking" or kind == "redacted_thinking":
            return self._thinking_start(index, block)
        if kind != "tool_use":
            # server_tool_use, web_search_tool_result, a newer type: whole, in its place.
            self._foreign.add(index)
            return [_kept("content_block_start", payload)]
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise malformed("a streamed tool_use block has no id or name", provider=self.provider)
        tool = _ToolBlock(index=len(self._tools), start_input=block.get("input"))
        self._tools[index] = tool
        return [ToolCallStart(index=tool.index, id=block["id"], name=block["name"])]

    def _thinking_start(self, index: int, block: dict[str, Any]) -> list[StreamEvent]:
        part = len(self._thinking)
        self._thinking[index] = part
        if block["type"] == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str):
                raise malformed("a streamed redacted_thinking has no data", provider=self.provider)
            return [RedactedThinking(index=part, data=data)]
        events: list[StreamEvent] = []
        text, signature = block.get("thinking"), block.get("signature")
        if isinstance(text, str) and text:
            events.append(ThinkingDelta(index=part, thinking=text))
        if isinstance(signature, str) and signature:
            events.append(SignatureDelta(index=part, signature=signature))
        return events

    def _thinking_delta(self, payload: dict[str, Any], key: str) -> list[StreamEvent]:
        part = self._thinking.get(payload.get("index", -1))
        value = payload["delta"].get(key)
        if part is None or not isinstance(value, str):
            raise malformed(f"a {key} delta for an unknown thinking block", provider=self.provider)
        if not value:
            return []
        if key == "thinking":
            return [ThinkingDelta(index=part, thinking=value)]
        return [SignatureDelta(index=part, signature=value)]

    def _block_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            raise malformed("content_block_delta has no delta", provider=self.provider)
        if self._foreign and payload.get("index") in self._foreign:
            return [_kept("content_block_delta", payload)]
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            return [TextDelta(text=delta["text"])] if delta["text"] else []
        if kind == "thinking_delta":
            return self._thinking_delta(payload, "thinking")
        if kind == "signature_delta":
            return self._thinking_delta(payload, "signature")
        if kind == "input_json_delta":
            tool = self._tools.get(payload.get("index", -1))
            part = delta.get("partial_json")
            if tool is None or not isinstance(part, str):
                raise malformed(
                    "input_json_delta for an unknown tool block", provider=self.provider
                )
            if not part:
                return []
            tool.streamed = True
            return [ToolCallDelta(index=tool.index, arguments=part)]
        # A delta the contract does not model (a text block's citations_delta, a newer kind).
        return [_kept("content_block_delta", payload)]

    def _block_stop(self, payload: dict[str, Any]) -> list[StreamEvent]:
        index = payload.get("index", -1)
        if (self._foreign or self._kept_text) and (
            index in self._foreign or index in self._kept_text
        ):
            self._foreign.discard(index)
            self._kept_text.discard(index)
            return [_kept("content_block_stop", payload)]
        tool = self._tools.get(index)
        if tool is None:
            return []
        events: list[StreamEvent] = []
        if not tool.streamed and tool.start_input:
            # Some Anthropic-compatible servers send the whole input at block start instead.
            arguments = orjson.dumps(tool.start_input).decode()
            events.append(ToolCallDelta(index=tool.index, arguments=arguments))
        events.append(ToolCallEnd(index=tool.index))
        return events

    def _message_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        delta = payload.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            self._stop_reason = delta["stop_reason"]
            sequence = delta.get("stop_sequence")
            self._stop_sequence = sequence if isinstance(sequence, str) else None
        self._merge_usage(payload.get("usage"))
        return []

    def _message_stop(self, payload: dict[str, Any]) -> list[StreamEvent]:
        self.stopped = True
        reason: FinishReason = finish_reason(self._stop_reason, has_tool_calls=bool(self._tools))
        events: list[StreamEvent] = []
        if self._usage:
            usage = usage_from_anthropic(self._usage)
            if self._usage_kept:
                kept = Extensions.model_construct(owner=ANTHROPIC_MESSAGES, fields=self._usage_kept)
                events.append(UsageEvent(usage=usage, extensions=kept))
            else:
                events.append(UsageEvent(usage=usage))
        events.append(MessageEnd(finish_reason=reason, stop_sequence=self._stop_sequence))
        return events


def _kept(event: str, payload: dict[str, Any]) -> ExtensionEvent:
    """An upstream event (or one of a block) the contract does not model, for an Anthropic
    client (built without a second validation: both fields come from the wire as they are)."""
    return ExtensionEvent.model_construct(owner=ANTHROPIC_MESSAGES, event=event, data=payload)


_HANDLERS = {
    "message_start": AnthropicStreamParser._message_start,
    "content_block_start": AnthropicStreamParser._block_start,
    "content_block_delta": AnthropicStreamParser._block_delta,
    "content_block_stop": AnthropicStreamParser._block_stop,
    "message_delta": AnthropicStreamParser._message_delta,
    "message_stop": AnthropicStreamParser._message_stop,
}
