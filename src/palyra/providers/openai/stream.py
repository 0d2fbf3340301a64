"""OpenAI Chat Completions SSE payloads -> neutral stream events, one ``data:`` payload at a time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from palyra.model import (
    ExtensionEvent,
    FinishReason,
    Logprobs,
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
from palyra.model.extensions import OPENAI_CHAT
from palyra.providers.errors import classify_http_error, stream_ended_early
from palyra.providers.openai.response import (
    finish_reason,
    logprobs_fields,
    malformed,
    reasoning_block,
    reasoning_text,
    usage_extensions,
    usage_from_openai,
)

DONE = "[DONE]"
# A chunk's fields the contract models, at each level; any other (``obfuscation``, Groq's
# ``x_groq``, a choice's ``content_filter_results``, a delta's reasoning as the server spelled
# it) travels in an extension event for an OpenAI client.
CHUNK_KEYS = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"}
)
CHOICE_KEYS = frozenset({"index", "delta", "logprobs", "finish_reason"})
DELTA_KEYS = frozenset({"role", "content", "refusal", "tool_calls", "function_call"})


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
        # The reasoning part being streamed, its text so far, and whether a signature (or
        # redacted data) closed it: the next reasoning then starts a new part.
        self._part = 0
        self._part_text: list[str] = []
        self._part_closed = False

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
            fingerprint = chunk.get("system_fingerprint")
            events.append(
                MessageStart(
                    id=str(chunk.get("id") or ""),
                    model=str(chunk.get("model") or self.model or ""),
                    created=created if isinstance(created, int) else None,
                    service_tier=tier if type(tier) is str else None,
                    headers=self.headers,
                    system_fingerprint=fingerprint if type(fingerprint) is str else None,
                )
            )
        kept: dict[str, Any] | None = None
        if not chunk.keys() <= CHUNK_KEYS:
            kept = {"chunk": {k: v for k, v in chunk.items() if k not in CHUNK_KEYS}}
        at = len(events)  # the extension event, if any, goes before the chunk's own events
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                if choice.get("index", 0) != 0:  # n > 1: the others go as they came
                    kept = kept or {}
                    kept.setdefault("choices", []).append(choice)
                    continue
                self._choice(choice, events)
                if not choice.keys() <= CHOICE_KEYS:
                    kept = kept or {}
                    kept["choice"] = {k: v for k, v in choice.items() if k not in CHOICE_KEYS}
                delta = choice.get("delta")
                if type(delta) is dict and not delta.keys() <= DELTA_KEYS:
                    kept = kept or {}
                    kept["delta"] = {k: v for k, v in delta.items() if k not in DELTA_KEYS}
        if kept is not None:
            # Built without a second validation: the fields come from the wire as they are.
            events.insert(
                at, ExtensionEvent.model_construct(owner=OPENAI_CHAT, event="chunk", data=kept)
            )
        usage = chunk.get("usage")
        groq = chunk.get("x_groq")
        if not isinstance(usage, dict) and isinstance(groq, dict):
            usage = groq.get("usage")  # Groq reports stream usage beside the chunk
        if isinstance(usage, dict):
            kept_usage = usage_extensions(usage)
            events.append(
                UsageEvent(usage=usage_from_openai(usage))
                if kept_usage is None
                else UsageEvent(usage=usage_from_openai(usage), extensions=kept_usage)
            )
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
            if not delta.keys() <= DELTA_KEYS:  # reasoning, or a field the contract lacks
                self._reasoning(delta, events)
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

    def _reasoning(self, delta: Mapping[str, Any], events: list[StreamEvent]) -> None:
        """The reasoning of a delta, from the most informative field it has (as for whole
        answers, :func:`reasoning_parts`). Servers that stream the text and then the signed
        block (LiteLLM, Palyra) repeat the text in the block: only its signature is new then."""
        for key in ("thinking_blocks", "reasoning_details"):
            blocks = delta.get(key)
            if isinstance(blocks, list) and blocks:
                for block in blocks:
                    part = reasoning_block(block)
                    if part is not None:
                        self._reasoning_part(part, events)
                return
        text = reasoning_text(delta)
        if text is not None:
            self._thinking_text(text, events)

    def _thinking_text(self, text: str, events: list[StreamEvent]) -> None:
        if self._part_closed:
            self._part, self._part_text, self._part_closed = self._part + 1, [], False
        self._part_text.append(text)
        events.append(ThinkingDelta(index=self._part, thinking=text))

    def _reasoning_part(self, part: Mapping[str, Any], events: list[StreamEvent]) -> None:
        if part["type"] == "redacted_thinking":
            if self._part_text or self._part_closed:
                self._part, self._part_text = self._part + 1, []
            events.append(RedactedThinking(index=self._part, data=part["data"]))
            self._part_closed = True
            return
        text, signature = part["thinking"], part["signature"]
        if text and (self._part_closed or text != "".join(self._part_text)):
            self._thinking_text(text, events)
        if signature is not None:
            events.append(SignatureDelta(index=self._part, signature=signature))
            self._part_closed = True

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
