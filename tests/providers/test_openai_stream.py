"""OpenAI SSE chunks -> neutral events; a streamed answer equals the same answer whole."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from palyra.model import (
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
from palyra.providers.openai import OpenAIStreamParser, parse_openai_chat_response
from palyra.providers.openai.stream import is_whole_payload
from palyra.providers.upstream.sse import SSEDecoder

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700, "model": "gpt-4o"}
USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 30,
    "total_tokens": 1230,
    "prompt_tokens_details": {"cached_tokens": 1024},
    "completion_tokens_details": {"reasoning_tokens": 12},
}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return orjson.dumps({**BASE, "choices": choices, "usage": None, **extra}).decode()


def tool_delta(
    index: int, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    out: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        out |= {"id": id, "type": "function"}
    return out


# The documented streaming shapes: a text answer, then parallel tool calls with usage.
TEXT_STREAM = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Hello"}),
    chunk({"content": " there!"}),
    chunk({}, "stop"),
    chunk(None, usage=USAGE),
    "[DONE]",
]
TOOL_STREAM = [
    chunk(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_delta(0, id="call_a", name="get_weather", args="")],
        }
    ),
    chunk({"tool_calls": [tool_delta(0, args='{"loc')]}),
    chunk({"tool_calls": [tool_delta(0, args='ation": "Paris"}')]}),
    chunk({"tool_calls": [tool_delta(1, id="call_b", name="get_time", args="")]}),
    chunk({"tool_calls": [tool_delta(1, args='{"tz":')]}),
    chunk({"tool_calls": [tool_delta(1, args='"CET"}')]}),
    chunk({}, "tool_calls"),
    chunk(None, usage=USAGE),
    "[DONE]",
]


def run(payloads: list[str]) -> list[StreamEvent]:
    parser = OpenAIStreamParser(provider="p")
    events = [e for data in payloads for e in parser.feed(data)]
    return events + parser.finish()


def whole(
    content: str | None, tool_calls: list[dict[str, Any]] | None, finish: str
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": BASE["id"],
        "object": "chat.completion",
        "created": BASE["created"],
        "model": BASE["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }


def test_text_stream_events_in_order() -> None:
    assert run(TEXT_STREAM) == [
        MessageStart(id="chatcmpl-1", model="gpt-4o", created=1700),
        TextDelta(text="Hello"),
        TextDelta(text=" there!"),
        UsageEvent(
            usage=Usage(
                input_tokens=1200, output_tokens=30, cached_input_tokens=1024, reasoning_tokens=12
            )
        ),
        MessageEnd(finish_reason="stop"),
    ]


def test_tool_calls_are_joined_by_index_and_closed_before_message_end() -> None:
    events = run(TOOL_STREAM)
    assert [e for e in events if not isinstance(e, MessageStart | UsageEvent)] == [
        ToolCallStart(index=0, id="call_a", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"loc'),
        ToolCallDelta(index=0, arguments='ation": "Paris"}'),
        ToolCallStart(index=1, id="call_b", name="get_time"),
        ToolCallDelta(index=1, arguments='{"tz":'),
        ToolCallDelta(index=1, arguments='"CET"}'),
        ToolCallEnd(index=0),
        ToolCallEnd(index=1),
        MessageEnd(finish_reason="tool_calls"),
    ]


@pytest.mark.parametrize(
    ("stream", "body"),
    [
        (TEXT_STREAM, whole("Hello there!", None, "stop")),
        (
            TOOL_STREAM,
            whole(
                None,
                [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz":"CET"}'},
                    },
                ],
                "tool_calls",
            ),
        ),
    ],
    ids=["text", "tools"],
)
def test_streamed_and_whole_answers_are_the_same_response(
    stream: list[str], body: dict[str, Any]
) -> None:
    streamed = StreamAccumulator().extend(run(stream)).response()
    assert streamed == parse_openai_chat_response(body)


def test_streamed_usage_with_cached_tokens_is_kept_not_estimated() -> None:
    usage = StreamAccumulator().extend(run(TEXT_STREAM)).response().usage
    assert usage.source == "provider"
    assert (usage.input_tokens, usage.cached_input_tokens, usage.reasoning_tokens) == (
        1200,
        1024,
        12,
    )


def test_streamed_tool_arguments_are_never_lost_when_name_and_args_share_a_chunk() -> None:
    stream = [
        chunk({"tool_calls": [tool_delta(0, id="c1", name="f", args='{"a":1}')]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    ]
    call = StreamAccumulator().extend(run(stream)).response().tool_calls[0]
    assert (call.id, call.name, call.arguments) == ("c1", "f", '{"a":1}')


def test_arguments_before_the_name_wait_for_it() -> None:
    stream = [
        chunk({"tool_calls": [tool_delta(0, id="c1", args='{"a"')]}),
        chunk({"tool_calls": [tool_delta(0, name="f", args=":2}")]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    ]
    call = StreamAccumulator().extend(run(stream)).response().tool_calls[0]
    assert (call.name, call.arguments) == ("f", '{"a":2}')


def test_calls_without_index_are_numbered_by_position() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"x":1}'}},
    ]
    response = (
        StreamAccumulator()
        .extend(run([chunk({"tool_calls": calls}, "tool_calls"), "[DONE]"]))
        .response()
    )
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("c1", "f", "{}"),
        ("c2", "g", '{"x":1}'),
    ]


def test_a_chunk_with_text_and_tool_calls_keeps_both() -> None:
    stream = [
        chunk({"content": "Checking.", "tool_calls": [tool_delta(0, id="c", name="f", args="{}")]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    ]
    response = StreamAccumulator().extend(run(stream)).response()
    assert response.content == "Checking."
    assert [c.id for c in response.tool_calls] == ["c"]


def test_groq_usage_beside_the_chunk_is_reported() -> None:
    stream = [
        chunk({"content": "hi"}),
        chunk(
            {}, "stop", x_groq={"id": "r", "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
        ),
        "[DONE]",
    ]
    usage = StreamAccumulator().extend(run(stream)).response().usage
    assert (usage.input_tokens, usage.output_tokens, usage.source) == (5, 1, "provider")


def test_no_usage_chunk_leaves_usage_to_the_accumulator_estimate() -> None:
    events = run([chunk({"content": "x"}), chunk({}, "stop"), "[DONE]"])
    assert not any(isinstance(e, UsageEvent) for e in events)


def test_finish_without_done_still_closes() -> None:
    events = run([chunk({"content": "x"}), chunk({}, "length")])
    assert events[-1] == MessageEnd(finish_reason="length")


def test_stream_cut_after_start_is_interrupted() -> None:
    with pytest.raises(PalyraError) as caught:
        run([chunk({"content": "partial"})])
    assert caught.value.envelope.failure_class is FailureClass.STREAM_INTERRUPTED


def test_stream_with_no_chunk_is_a_connection_failure() -> None:
    with pytest.raises(PalyraError) as caught:
        run([])
    assert caught.value.envelope.failure_class is FailureClass.CONNECTION


def test_invalid_chunk_is_malformed() -> None:
    with pytest.raises(PalyraError) as caught:
        run(["{not json"])
    assert caught.value.envelope.failure_class is FailureClass.MALFORMED_RESPONSE


def test_error_object_mid_stream_is_classified() -> None:
    error = orjson.dumps(
        {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        }
    ).decode()
    with pytest.raises(PalyraError) as caught:
        run([chunk({"content": "x"}), error])
    assert caught.value.envelope.failure_class is FailureClass.RATE_LIMITED


def test_nothing_after_done_is_read() -> None:
    parser = OpenAIStreamParser()
    parser.feed(chunk({"content": "x"}))
    parser.feed("[DONE]")
    assert parser.feed(chunk({"content": "late"})) == []
    assert parser.finish() == []


def _sse_bytes(payloads: list[str]) -> bytes:
    return b"".join(f"data: {p}\n\n".encode() for p in payloads)


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
def test_split_anywhere_across_byte_chunks_gives_the_same_events(sizes: list[int]) -> None:
    raw = _sse_bytes(TOOL_STREAM)
    pieces, at = [], 0
    for size in sizes:
        pieces.append(raw[at : at + size])
        at += size
    pieces.append(raw[at:])
    decoder, parser = SSEDecoder(), OpenAIStreamParser(provider="p")
    events: list[StreamEvent] = []
    for piece in pieces:
        for sse in decoder.feed(piece):
            events.extend(parser.feed(sse.data))
    for sse in decoder.flush():
        events.extend(parser.feed(sse.data))
    events.extend(parser.finish())
    assert events == run(TOOL_STREAM)


def test_one_event_split_mid_json_and_mid_utf8() -> None:
    raw = _sse_bytes([chunk({"content": "Grüße 🚀"}), chunk({}, "stop"), "[DONE]"])
    cut = raw.index("🚀".encode()) + 2
    decoder, parser = SSEDecoder(), OpenAIStreamParser()
    first = [e for s in decoder.feed(raw[:cut]) for e in parser.feed(s.data)]
    assert first == []
    rest = [e for s in decoder.feed(raw[cut:]) for e in parser.feed(s.data)]
    assert TextDelta(text="Grüße 🚀") in rest


def test_forced_call_streamed_with_stop_ends_as_tool_calls_like_the_whole_answer() -> None:
    """The final chunk carries the last argument fragment and ``finish_reason: stop``."""
    stream = [
        chunk({"role": "assistant", "tool_calls": [tool_delta(0, id="call_a", name="f")]}),
        chunk({"tool_calls": [tool_delta(0, args='{"n":')]}),
        chunk({"tool_calls": [tool_delta(0, args="1}")]}, "stop"),
        "[DONE]",
    ]
    events = run(stream)
    assert events[-2:] == [ToolCallEnd(index=0), MessageEnd(finish_reason="tool_calls")]
    streamed = StreamAccumulator().extend(events).response()
    call = {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"n":1}'}}
    expected = parse_openai_chat_response(whole(None, [call], "stop"))
    assert (streamed.tool_calls, streamed.finish_reason) == (
        expected.tool_calls,
        expected.finish_reason,
    )


@pytest.mark.parametrize(
    ("data", "whole"),
    [
        ("[DONE]", True),
        (" [DONE] ", True),
        (chunk({}, "stop"), True),
        ('{"id":"chatcmpl-1","choi', False),
        ("[DONE", False),
        ("", False),
    ],
)
def test_is_whole_payload_tells_a_cut_event_from_a_finished_one(data: str, whole: bool) -> None:
    assert is_whole_payload(data) is whole


@pytest.mark.parametrize(
    "payload",
    ["[DONE]", " [DONE]\n", "\t[DONE] ", "[DONE]}", "}", "[DONE] }", '{"choices": []} ', "[done]"],
)
def test_done_is_told_apart_exactly_as_by_stripping(payload: str) -> None:
    """The parser skips stripping payloads that end in "}": the outcome must not change."""
    parser = OpenAIStreamParser(provider="p")
    parser.feed(orjson.dumps({"id": "c", "choices": []}).decode())
    try:
        events: object = parser.feed(payload)
    except PalyraError as exc:
        events = exc.failure_class
    if payload.strip() == "[DONE]":
        assert events == [MessageEnd(finish_reason="stop")] and parser.done
    else:
        assert not parser.done
        assert events in ([], FailureClass.MALFORMED_RESPONSE)


def test_the_accumulated_answer_keeps_the_streams_tier_and_fingerprint() -> None:
    from palyra.model import StreamAccumulator

    parser = OpenAIStreamParser(provider="oa")
    chunk = (
        '{"id":"c1","model":"m","service_tier":"priority","system_fingerprint":"fp_1",'
        '"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}'
    )
    events = [*parser.feed(chunk), *parser.feed("[DONE]")]
    answer = StreamAccumulator().extend(events).response()
    assert (answer.service_tier, answer.system_fingerprint, answer.content) == (
        "priority",
        "fp_1",
        "hi",
    )
