"""OpenAI Chat Completions SSE payloads -> neutral stream events, one ``data:`` payload at a time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from palyra.model import (
    FinishReason,
    Logprobs,
    MessageEnd,
    MessageStart,
    PalyraError,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageEvent,
)
from palyra.providers.errors import classify_http_error, stream_ended_early
from palyra.providers.openai.response import (
    finish_reason,
    logprobs_fields,
    malformed,
    reasoning_text,
    usage_from_openai,
)

DONE = "[DONE]"


def is_whole_payload(data: str) -> bool:
    """Whether an event the byte stream ended inside still carries a whole payload.

    A server may close right after ``data: [DONE]`` (or a last chunk) without the blank line;
    that answer is complete. A payload cut mid-JSON is not.
    """
    if data.strip() == DONE:
        return True
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


@dataclass
class _Call:
    """One streamed tool call; fragments that come before its name wait in ``pending``."""

    index: int
    id: str | None = None
    name: str | None = None
    started: bool = False
    pending: list[str] = field(default_factory=list)


class OpenAIStreamParser:
    """Stateful and pure: feed each SSE ``data`` payload, get the events it completes.

    Tool calls are joined by the upstream ``index`` and renumbered in order of appearance.
    ``MessageEnd`` waits for ``[DONE]`` so the usage chunk (sent after the finish chunk) lands
    before it; ``finish()`` raises if the stream stopped short.
    """

    def __init__(self, *, provider: str | None = None, model: str | None = None) -> None:
        self.provider = provider
        self.model = model
        self.started = False
        self.done = False
        # The upstream answer's headers a client reads, set by the provider before the first
        # feed; they ride on MessageStart.
        self.headers: dict[str, str] = {}
        self._finish: FinishReason | None = None
        self._calls: dict[int, _Call] = {}
        self._saw_calls = False
        self._next_index = 0

    def feed(self, data: str) -> list[StreamEvent]:
        if self.done:
            return []
        # A chunk ends in "}", which [DONE] cannot: no stripped copy of every chunk to compare.
        if data[-1:] != "}" and data.strip() == DONE:
            return self._close()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise malformed(
                f"a stream chunk is not valid JSON ({exc})", provider=self.provider
            ) from exc
        if not isinstance(chunk, dict):
            raise malformed("a stream chunk is JSON but not an object", provider=self.provider)
        if isinstance(chunk.get("error"), dict):
            raise self._upstream_error(chunk)
        events: list[StreamEvent] = []
        if not self.started:
            self.started = True
            created = chunk.get("created")
            tier = chunk.get("service_tier")
            events.append(
                MessageStart(
                    id=str(chunk.get("id") or ""),
                    model=str(chunk.get("model") or self.model or ""),
                    created=created if isinstance(created, int) else None,
                    service_tier=tier if type(tier) is str else None,
                    headers=self.headers,
                )
            )
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    self._choice(choice, events)
        usage = chunk.get("usage")
        groq = chunk.get("x_groq")
        if not isinstance(usage, dict) and isinstance(groq, dict):
            usage = groq.get("usage")  # Groq reports stream usage beside the chunk
        if isinstance(usage, dict):
            events.append(UsageEvent(usage=usage_from_openai(usage)))
        return events

    def finish(self) -> list[StreamEvent]:
        """The byte stream ended: close cleanly after a finish reason, otherwise fail."""
        if self.done:
            return []
        if self._finish is not None:
            return self._close()
        where = self.provider or "openai"
        raise stream_ended_early(
            self.provider,
            self.model,
            started=self.started,
            before_any=f"{where}: the stream ended before any chunk arrived",
            cut=f"{where}: the stream ended without a finish reason or [DONE]; "
            "the answer is incomplete",
        )

    def _choice(self, choice: Mapping[str, Any], events: list[StreamEvent]) -> None:
        """Append the events of one choice of a chunk to ``events``."""
        delta = choice.get("delta")
        logprobs = choice.get("logprobs")
        if type(logprobs) is dict:
            text = delta.get("content") if isinstance(delta, dict) else None
            events.append(
                TextDelta(
                    text=text if isinstance(text, str) else "",
                    logprobs=Logprobs.model_validate(logprobs_fields(logprobs)),
                )
            )
            delta = {k: v for k, v in delta.items() if k != "content"} if delta else None
        if isinstance(delta, dict):
            thinking = reasoning_text(delta)
            if thinking is not None:
                events.append(ThinkingDelta(index=0, thinking=thinking))
            text = delta.get("content")
            if isinstance(text, str) and text:
                events.append(TextDelta(text=text))
            text = delta.get("refusal")
            if isinstance(text, str) and text:
                events.append(TextDelta(text=text))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for position, call in enumerate(calls):
                    if isinstance(call, dict):
                        events.extend(self._tool_fragment(call, position))
            legacy = delta.get("function_call")
            if isinstance(legacy, dict):
                events.extend(self._tool_fragment({"index": 0, "function": legacy}, 0))
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self._finish = finish_reason(reason, has_tool_calls=self._saw_calls)
            events.extend(self._end_calls())

    def _tool_fragment(self, call: Mapping[str, Any], position: int) -> list[StreamEvent]:
        raw_index = call.get("index")
        key = raw_index if isinstance(raw_index, int) else position
        state = self._calls.get(key)
        if state is None:
            state = self._calls[key] = _Call(index=self._next_index)
            self._next_index += 1
            self._saw_calls = True
        if isinstance(call.get("id"), str) and call["id"] and state.id is None:
            state.id = call["id"]
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        if isinstance(function.get("name"), str) and function["name"] and state.name is None:
            state.name = function["name"]
        events: list[StreamEvent] = []
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            state.pending.append(arguments)
        if not state.started and state.name is not None:
            state.started = True
            events.append(
                ToolCallStart(
                    index=state.index, id=state.id or self._call_id(state), name=state.name
                )
            )
        if state.started and state.pending:
            events.append(ToolCallDelta(index=state.index, arguments="".join(state.pending)))
            state.pending.clear()
        return events

    def _call_id(self, state: _Call) -> str:
        return f"call_{state.index}"

    def _end_calls(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for state in self._calls.values():
            if not state.started:
                # A call whose name never came cannot be run; keep its arguments visible anyway.
                state.started = True
                events.append(
                    ToolCallStart(index=state.index, id=state.id or self._call_id(state), name="")
                )
                if state.pending:
                    events.append(
                        ToolCallDelta(index=state.index, arguments="".join(state.pending))
                    )
            events.append(ToolCallEnd(index=state.index))
        self._calls.clear()
        return events

    def _close(self) -> list[StreamEvent]:
        if not self.started:
            raise malformed("the stream sent [DONE] before any chunk", provider=self.provider)
        self.done = True
        events = self._end_calls()
        reason = self._finish or ("tool_calls" if self._saw_calls else "stop")
        events.append(MessageEnd(finish_reason=reason))
        return events

    def _upstream_error(self, chunk: Mapping[str, Any]) -> PalyraError:
        error = chunk["error"]
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        return PalyraError(
            classify_http_error(
                status, orjson.dumps(chunk), {}, provider=self.provider, model=self.model
            )
        )
