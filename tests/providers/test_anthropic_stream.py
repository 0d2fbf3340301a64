"""Anthropic SSE -> neutral events, and streamed == non-streamed for the same answer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.model import (
    ChatResponse,
    ExtensionEvent,
    FailureClass,
    MessageEnd,
    MessageStart,
    PalyraError,
    StreamAccumulator,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageEvent,
)
from palyra.providers.anthropic import AnthropicStreamParser, parse_anthropic_message
from palyra.providers.upstream.sse import SSEDecoder

Sse = list[tuple[str, dict[str, Any]]]


def sse_bytes(events: Sse) -> bytes:
    return b"".join(
        f"event: {name}\ndata: {orjson.dumps(data).decode()}\n\n".encode() for name, data in events
    )


def run(events: Sse, chunk_sizes: list[int] | None = None) -> list[StreamEvent]:
    """Decode the SSE bytes in the given chunk sizes (default: whole) and parse them."""
    raw = sse_bytes(events)
    decoder, parser = SSEDecoder(), AnthropicStreamParser(provider="anth")
    out: list[StreamEvent] = []
    sizes = iter(chunk_sizes or [len(raw)])
    pos = 0
    while pos < len(raw):
        size = max(1, next(sizes, len(raw)))
        for sse in decoder.feed(raw[pos : pos + size]):
            out.extend(parser.feed(sse.event, sse.data))
        pos += size
    for sse in decoder.flush():
        out.extend(parser.feed(sse.event, sse.data))
    out.extend(parser.finish())
    return out


def start(usage: dict[str, int]) -> tuple[str, dict[str, Any]]:
    message = {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-opus-4-6",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return ("message_start", {"type": "message_start", "message": message})


# Shape of the "Basic streaming request" example in Anthropic's streaming docs.
TEXT_STREAM: Sse = [
    start({"input_tokens": 25, "output_tokens": 1}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]

TOOL_INPUT = {"location": "San Francisco, CA", "unit": "fahrenheit"}
TOOL_JSON = orjson.dumps(TOOL_INPUT).decode()


def tool_block(index: int, tool_id: str, name: str, pieces: list[str]) -> Sse:
    events: Sse = [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
            },
        )
    ]
    for piece in pieces:
        delta = {"type": "input_json_delta", "partial_json": piece}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def pieces_of(text: str, size: int) -> list[str]:
    return [""] + [text[i : i + size] for i in range(0, len(text), size)]


# Text, then two parallel tool calls whose input arrives in 3-character fragments.
TOOL_STREAM: Sse = [
    start({"input_tokens": 472, "output_tokens": 2, "cache_read_input_tokens": 2048}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check."},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    *tool_block(1, "toolu_01", "get_weather", pieces_of(TOOL_JSON, 3)),
    *tool_block(2, "toolu_02", "get_time", [""]),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]

TOOL_MESSAGE: dict[str, Any] = {
    "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
    "type": "message",
    "role": "assistant",
    "model": "claude-opus-4-6",
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": TOOL_INPUT},
        {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 472, "output_tokens": 89, "cache_read_input_tokens": 2048},
}


def test_text_stream_yields_start_deltas_usage_end_in_order() -> None:
    assert run(TEXT_STREAM) == [
        MessageStart(
            id="msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            model="claude-opus-4-6",
            usage=Usage(input_tokens=25, output_tokens=1, source="provider"),
        ),
        # The ping, kept in its place for an Anthropic client (other APIs' encoders skip it).
        ExtensionEvent(owner="anthropic_messages", event="ping", data={"type": "ping"}),
        TextDelta(text="Hello"),
        TextDelta(text="!"),
        UsageEvent(usage=Usage(input_tokens=25, output_tokens=15, source="provider")),
        MessageEnd(finish_reason="stop"),
    ]


def test_tool_calls_are_numbered_over_tool_blocks_only_and_arguments_are_whole() -> None:
    events = run(TOOL_STREAM)
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts == [
        ToolCallStart(index=0, id="toolu_01", name="get_weather"),
        ToolCallStart(index=1, id="toolu_02", name="get_time"),
    ]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) == len(TOOL_JSON) // 3 + 1
    assert "".join(d.arguments for d in deltas if d.index == 0) == TOOL_JSON
    assert [e for e in events if isinstance(e, ToolCallEnd)] == [
        ToolCallEnd(index=0),
        ToolCallEnd(index=1),
    ]
    assert events[-1] == MessageEnd(finish_reason="tool_calls")


def test_usage_keeps_cache_tokens_from_message_start() -> None:
    usage = next(e for e in run(TOOL_STREAM) if isinstance(e, UsageEvent)).usage
    assert usage == Usage(
        input_tokens=472 + 2048, output_tokens=89, cached_input_tokens=2048, source="provider"
    )


def test_final_message_delta_usage_overrides_start_usage() -> None:
    stream = list(TEXT_STREAM)
    stream[-2] = (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"input_tokens": 30, "output_tokens": 7, "cache_creation_input_tokens": 5},
        },
    )
    events = run(stream)
    assert events[-2] == UsageEvent(
        usage=Usage(input_tokens=35, output_tokens=7, cache_creation_input_tokens=5)
    )
    assert events[-1] == MessageEnd(finish_reason="length")


def normalised(response: ChatResponse) -> ChatResponse:
    """Tool arguments compared as JSON: the stream carries Anthropic's spacing, we dump compactly."""
    calls = [
        c.model_copy(update={"arguments": orjson.dumps(c.arguments_json()).decode()})
        for c in response.tool_calls
    ]
    return response.model_copy(update={"tool_calls": calls, "provider": None, "created": None})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=200))
def test_streamed_answer_equals_whole_answer_however_the_bytes_are_split(sizes: list[int]) -> None:
    streamed = StreamAccumulator().extend(run(TOOL_STREAM, sizes)).response()
    whole = parse_anthropic_message(TOOL_MESSAGE)
    assert normalised(streamed) == normalised(whole)
    assert streamed.tool_calls[0].arguments == TOOL_JSON


def test_text_stream_equals_its_whole_message() -> None:
    whole = parse_anthropic_message(
        {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            "model": "claude-opus-4-6",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 25, "output_tokens": 15},
        }
    )
    assert StreamAccumulator().extend(run(TEXT_STREAM)).response() == whole


def test_tool_input_sent_whole_at_block_start_is_not_lost() -> None:
    stream: Sse = [
        start({"input_tokens": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    response = StreamAccumulator().extend(run(stream)).response()
    assert response.tool_calls[0].arguments == '{"a":1}'


@pytest.mark.parametrize(
    ("error_type", "failure"),
    [
        ("overloaded_error", FailureClass.UPSTREAM_UNAVAILABLE),
        ("api_error", FailureClass.UPSTREAM_UNAVAILABLE),
        ("rate_limit_error", FailureClass.RATE_LIMITED),
        ("authentication_error", FailureClass.AUTH_INVALID),
        ("invalid_request_error", FailureClass.INVALID_REQUEST),
        ("mystery_error", FailureClass.UPSTREAM_UNAVAILABLE),
    ],
)
def test_error_event_raises_classified_error(error_type: str, failure: FailureClass) -> None:
    parser = AnthropicStreamParser(provider="anth")
    parser.feed("message_start", orjson.dumps(start({"input_tokens": 1})[1]).decode())
    data = {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
    with pytest.raises(PalyraError) as info:
        parser.feed("error", orjson.dumps(data).decode())
    assert info.value.failure_class is failure
    assert info.value.envelope.provider == "anth"
    assert info.value.envelope.model == "claude-opus-4-6"


def test_stream_ending_without_message_stop_is_interrupted() -> None:
    with pytest.raises(PalyraError) as info:
        run(TOOL_STREAM[:-1])
    assert info.value.failure_class is FailureClass.STREAM_INTERRUPTED


def test_stream_ending_before_any_event_is_a_connection_failure() -> None:
    with pytest.raises(PalyraError) as info:
        AnthropicStreamParser(provider="anth").finish()
    assert info.value.failure_class is FailureClass.CONNECTION


def test_event_type_is_read_from_data_when_the_event_line_is_missing() -> None:
    parser = AnthropicStreamParser()
    events = parser.feed("message", orjson.dumps(start({"input_tokens": 1})[1]).decode())
    assert isinstance(events[0], MessageStart)


def test_undecodable_event_data_is_malformed() -> None:
    with pytest.raises(PalyraError) as info:
        AnthropicStreamParser().feed("content_block_delta", "{not json")
    assert info.value.failure_class is FailureClass.MALFORMED_RESPONSE


def test_message_start_reports_the_upstream_input_count_at_once() -> None:
    first = run(TOOL_STREAM)[0]
    assert isinstance(first, MessageStart)
    assert first.usage is not None
    assert (first.usage.input_tokens, first.usage.cached_input_tokens) == (472 + 2048, 2048)
    no_count = [start({}), *TEXT_STREAM[1:]]
    opening = run(no_count)[0]
    assert isinstance(opening, MessageStart) and opening.usage is None
