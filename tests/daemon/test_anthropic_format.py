"""Anthropic Messages wire format <-> neutral types, as pure functions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from palyra.daemon.surfaces.anthropic.messages_format import (
    MessageEventEncoder,
    error_json,
    message_json,
    parse_messages_request,
    usage_json,
)
from palyra.model import (
    ChatResponse,
    ErrorEnvelope,
    ErrorEvent,
    FailureClass,
    ImagePart,
    Message,
    MessageEnd,
    MessageStart,
    NamedToolChoice,
    PalyraError,
    Role,
    TextDelta,
    TextPart,
    ThinkingPart,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
    Usage,
    UsageEvent,
)


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    } | extra


def frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block:
            event, data = block.split("\n")
            out.append((event.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_tool_results_become_tool_messages_before_the_user_text_of_the_same_turn() -> None:
    request = parse_messages_request(
        body(
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "checking"},
                        {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": "Oslo"}},
                        {"type": "tool_use", "id": "t2", "name": "w", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "here you go"},
                        {"type": "tool_result", "tool_use_id": "t1", "content": "4 C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t2",
                            "is_error": True,
                            "content": [
                                {"type": "text", "text": "a"},
                                {"type": "text", "text": "b"},
                                {
                                    "type": "image",
                                    "source": {"type": "url", "url": "https://e.org/x.png"},
                                },
                            ],
                        },
                    ],
                },
            ]
        )
    )
    roles = [m.role for m in request.messages]
    assert roles == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.TOOL, Role.USER]
    assistant = request.messages[1]
    assert assistant.content[:2] == [
        ThinkingPart(thinking="hmm", signature="s"),
        TextPart(text="checking"),
    ]
    assert assistant.tool_calls == [
        ToolCallPart(id="t1", name="w", arguments='{"c":"Oslo"}'),
        ToolCallPart(id="t2", name="w", arguments="{}"),
    ]
    assert request.messages[2].content == [ToolResultPart(tool_call_id="t1", content="4 C")]
    assert request.messages[3].content == [
        ToolResultPart(tool_call_id="t2", content="ab", is_error=True),
        ImagePart(url="https://e.org/x.png"),
    ]
    assert request.messages[4].text_content() == "here you go"
    for message in request.messages:  # built unvalidated: validation would agree
        again = Message(role=message.role, content=list(message.content))
        assert again == message and again.model_fields_set == message.model_fields_set
        assert Message.model_validate(message.model_dump()) == message


def test_system_string_or_blocks_and_sampling_fields_map_to_neutral_fields() -> None:
    request = parse_messages_request(
        body(
            system=[{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}],
            stop_sequences=["END"],
            temperature=0.5,
            top_p=0.9,
            top_k=5,
            metadata={"user_id": "u-1"},
            stream=True,
        )
    )
    assert request.messages[0].role is Role.SYSTEM
    assert request.messages[0].text_content() == "a"
    assert (request.max_output_tokens, request.stop, request.temperature, request.top_p) == (
        10,
        ["END"],
        0.5,
        0.9,
    )
    assert (request.user, request.stream) == ("u-1", True)
    assert parse_messages_request(body(system="s")).messages[0].text_content() == "s"


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "w"}, NamedToolChoice(name="w"), None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ],
)
def test_tool_choice_maps_to_neutral_choice(choice: Any, expected: Any, parallel: Any) -> None:
    tools = [{"name": "w", "description": "d", "input_schema": {"type": "object"}}]
    request = parse_messages_request(body(tools=tools, tool_choice=choice))
    assert request.tool_choice == expected
    assert request.parallel_tool_calls is parallel
    assert request.tools[0].parameters == {"type": "object"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field"),
        (body(temperature=1.5), "temperature is 1.5; Anthropic accepts 0 to 1"),
        (body(tools=[{"name": "w"}]), "tools[0].input_schema must be a JSON object"),
        (body(tools=[{"name": "bad name", "input_schema": {}}]), "tools[0].name"),
        (body(tool_choice={"type": "sometimes"}), "tool_choice.type is 'sometimes'"),
        (body(stop_sequences="END"), "stop_sequences must be an array"),
        (body(metadata={"user_id": 3}), "metadata.user_id must be a string"),
        (body(system=[{"type": "image"}]), "system[0] has type 'image'"),
        (
            body(messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}]),
            "source.type is None",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}],
                    }
                ]
            ),
            "source.media_type must be a string",
        ),
        (
            body(messages=[{"role": "assistant", "content": [{"type": "tool_result"}]}]),
            "messages[0].content[0] has type 'tool_result'",
        ),
        (
            body(
                messages=[
                    {
                        "role": "assistant",
                        "content": [{"type": "image", "source": {"type": "url", "url": "u"}}],
                    }
                ]
            ),
            "messages[0].content[0] has type 'image'",
        ),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content must be a string"),
    ],
)
def test_bad_fields_are_invalid_requests_naming_the_field(data: Any, expected: str) -> None:
    with pytest.raises(PalyraError) as info:
        parse_messages_request(data)
    assert info.value.failure_class is FailureClass.INVALID_REQUEST
    assert expected in info.value.envelope.message


def test_count_tokens_bodies_need_no_max_tokens() -> None:
    data = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert parse_messages_request(data, require_max_tokens=False).max_output_tokens is None


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("error", "end_turn"),
    ],
)
def test_finish_reasons_map_to_anthropic_stop_reasons(finish: Any, stop_reason: str) -> None:
    response = ChatResponse(id="msg_1", model="m", content="x", finish_reason=finish)
    assert message_json(response)["stop_reason"] == stop_reason


def test_message_json_keeps_tool_input_as_an_object_and_prefixes_the_id() -> None:
    response = ChatResponse(
        id="chatcmpl-9",
        model="m",
        tool_calls=[
            ToolCallPart(id="t1", name="a", arguments='{"x": 1}'),
            ToolCallPart(id="t2", name="b", arguments="[1, 2]"),
            ToolCallPart(id="t3", name="c", arguments="not json"),
        ],
        finish_reason="tool_calls",
    )
    out = message_json(response)
    assert out["id"] == "msg_chatcmpl-9"
    assert [b["input"] for b in out["content"]] == [
        {"x": 1},
        {"raw": "[1, 2]"},
        {"raw": "not json"},
    ]


def test_usage_puts_cache_reads_and_writes_beside_uncached_input() -> None:
    usage = Usage(
        input_tokens=100, output_tokens=7, cached_input_tokens=60, cache_creation_input_tokens=30
    )
    assert usage_json(usage) == {
        "input_tokens": 10,
        "output_tokens": 7,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 30,
    }


@pytest.mark.parametrize(
    ("failure", "status", "error_type"),
    [
        (FailureClass.AUTH_INVALID, 401, "authentication_error"),
        (FailureClass.PERMISSION_DENIED, 403, "permission_error"),
        (FailureClass.NOT_FOUND, 404, "not_found_error"),
        (FailureClass.RATE_LIMITED, 429, "rate_limit_error"),
        (FailureClass.QUOTA_EXHAUSTED, 429, "rate_limit_error"),
        (FailureClass.CONTEXT_TOO_LONG, 400, "invalid_request_error"),
        (FailureClass.UPSTREAM_UNAVAILABLE, 503, "overloaded_error"),
        (FailureClass.TIMEOUT, 504, "timeout_error"),
        (FailureClass.INTERNAL, 500, "api_error"),
    ],
)
def test_failure_classes_map_to_anthropic_error_types(
    failure: FailureClass, status: int, error_type: str
) -> None:
    envelope = ErrorEnvelope.of(failure, "boom")
    assert envelope.http_status == status
    assert error_json(envelope) == {
        "type": "error",
        "error": {"type": error_type, "message": "boom"},
    }


def test_a_413_is_request_too_large() -> None:
    envelope = ErrorEnvelope.of(FailureClass.INVALID_REQUEST, "big", http_status=413)
    assert error_json(envelope)["error"]["type"] == "request_too_large"


def test_encoder_opens_text_lazily_then_one_block_per_tool_and_sends_late_usage() -> None:
    encoder = MessageEventEncoder(fallback_id="req", model="fallback", estimate_input=lambda: 9)
    events = [
        MessageStart(id="up-1", model="m"),
        TextDelta(text=""),
        TextDelta(text="Let me "),
        TextDelta(text="check."),
        ToolCallStart(index=0, id="t1", name="a"),
        ToolCallDelta(index=0, arguments='{"x"'),
        ToolCallDelta(index=0, arguments=": 1}"),
        ToolCallEnd(index=0),
        ToolCallStart(index=1, id="t2", name="b"),
        MessageEnd(finish_reason="tool_calls"),
        UsageEvent(usage=Usage(input_tokens=5, output_tokens=3)),
    ]
    raw = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    out = frames(raw)
    assert [(name, data.get("index")) for name, data in out] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    start = out[0][1]["message"]
    assert (start["id"], start["model"], start["usage"]["input_tokens"]) == ("msg_up-1", "m", 9)
    assert start["usage"]["output_tokens"] == 0
    assert out[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "t1",
        "name": "a",
        "input": {},
        "caller": {"type": "direct"},
    }
    assert out[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"x"'}
    assert out[-2][1]["delta"] == {
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "stop_details": None,
        "container": None,
    }
    assert out[-2][1]["usage"]["input_tokens"] == 5
    assert out[-2][1]["usage"]["output_tokens"] == 3


def test_encoder_text_after_a_tool_block_opens_a_new_text_block() -> None:
    encoder = MessageEventEncoder(fallback_id="req", model="m", estimate_input=lambda: 0)
    events = [
        MessageStart(id="", model=""),
        ToolCallStart(index=0, id="t1", name="a"),
        TextDelta(text="after"),
    ]
    raw = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    out = frames(raw)
    assert out[0][1]["message"]["id"] == "msg_req"
    starts = [d["content_block"]["type"] for n, d in out if n == "content_block_start"]
    assert starts == ["tool_use", "text"]
    stops = [d["index"] for n, d in out if n == "content_block_stop"]
    assert sorted(stops) == [0, 1]
    assert out[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert out[-2][1]["usage"]["output_tokens"] == 0
    assert out[-2][1]["usage"]["input_tokens"] is None  # unknown: the SDK keeps message_start's


def test_encoder_turns_an_error_event_into_an_sse_error() -> None:
    encoder = MessageEventEncoder(fallback_id="req", model="m", estimate_input=lambda: 0)
    envelope = ErrorEnvelope.of(FailureClass.RATE_LIMITED, "slow")
    assert frames(encoder.encode(ErrorEvent(error=envelope))) == [
        ("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}})
    ]


def test_message_start_carries_the_upstream_count_and_skips_the_local_estimate() -> None:
    def never() -> int:
        raise AssertionError("the prompt was tokenized although the upstream gave its count")

    encoder = MessageEventEncoder(fallback_id="req", model="m", estimate_input=never)
    early = Usage(input_tokens=1200, cached_input_tokens=1000, output_tokens=1)
    start = frames(encoder.encode(MessageStart(id="u", model="m", usage=early)))[0][1]
    usage = start["message"]["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (200, 1000)
    assert usage["output_tokens"] == 0


def test_message_start_without_an_upstream_count_estimates_once() -> None:
    calls: list[int] = []

    def estimate() -> int:
        calls.append(1)
        return 42

    encoder = MessageEventEncoder(fallback_id="req", model="m", estimate_input=estimate)
    start = frames(encoder.encode(MessageStart(id="u", model="m")))[0][1]
    assert start["message"]["usage"]["input_tokens"] == 42 and calls == [1]
