"""Every contract type survives JSON and back; a stream folds back into the response it came from."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_strategies import chat_requests, chat_responses, messages
from pydantic import BaseModel, TypeAdapter

from palyra.model import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorEnvelope,
    ErrorEvent,
    FailureClass,
    ImagePart,
    Limits,
    Message,
    MessageEnd,
    MessageStart,
    ModelInfo,
    NamedToolChoice,
    PalyraError,
    ResponseFormat,
    Role,
    StreamAccumulator,
    StreamEvent,
    TextDelta,
    TextPart,
    TokenCount,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
    ToolSpec,
    TranscriptionRequest,
    TranscriptionResponse,
    TranscriptionSegment,
    TranscriptionWord,
    Usage,
    UsageEvent,
)

_EVENTS: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)
_ENVELOPE = ErrorEnvelope.of(FailureClass.RATE_LIMITED, "slow down", retry_after_s=1.5, code="x")
_CALL = ToolCallPart(id="call_1", name="lookup", arguments='{"q": "é"}')

_EXAMPLES: list[BaseModel] = [
    TextPart(text="héllo\nwörld"),
    ImagePart(url="https://example.com/cat.png", detail="high", width=640, height=480),
    ImagePart(data="iVBORw0KGgo=", media_type="image/png", detail="low"),
    _CALL,
    ToolResultPart(tool_call_id="call_1", content={"rows": [1, 2]}, is_error=True),
    ToolResultPart(tool_call_id="call_1", content=["a", {"b": None}]),
    Message.text("system", "be brief"),
    Message(role=Role.ASSISTANT, content=[TextPart(text="let me look"), _CALL]),
    Message.tool_result("call_1", "42"),
    ToolSpec(name="lookup", description="Find", parameters={"type": "object"}, strict=True),
    NamedToolChoice(name="lookup"),
    ResponseFormat(type="json_schema", schema_name="out", json_schema={"type": "object"}),
    ChatRequest(
        model="gpt-4o",
        messages=[Message.text("user", "hi")],
        tools=[ToolSpec(name="lookup")],
        tool_choice=NamedToolChoice(name="lookup"),
        max_output_tokens=10,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        response_format=ResponseFormat(type="json_object"),
        stream=True,
        user="u1",
        metadata={"k": "v"},
    ),
    Usage(input_tokens=3, output_tokens=4, cached_input_tokens=1, reasoning_tokens=2),
    ChatResponse(
        id="r1",
        model="m",
        content="hi",
        tool_calls=[_CALL],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=1, source="estimated"),
        provider="openai-main",
        created=1700000000,
        system_fingerprint="fp",
    ),
    EmbeddingRequest(model="e", inputs=["a", "b"], dimensions=8, encoding_format="base64"),
    EmbeddingResponse(model="e", vectors=[[0.25, -1.0], [0.0, 3.5]]),
    TranscriptionRequest(
        model="whisper-1",
        audio=b"RIFF\x00\xff\xfe binary",
        language="en",
        timestamp_granularities=["word", "segment"],
        temperature=0.2,
    ),
    TranscriptionResponse(
        text="hello there",
        language="en",
        duration_s=1.25,
        segments=[TranscriptionSegment(id=0, start=0.0, end=1.25, text="hello there")],
        words=[TranscriptionWord(word="hello", start=0.0, end=0.5)],
    ),
    ModelInfo(
        id="m",
        provider="p",
        context_window=128000,
        max_output_tokens=4096,
        capabilities=frozenset({"chat", "tools"}),
    ),
    TokenCount(input_tokens=12, estimated=True),
    Limits(max_tools=3),
    _ENVELOPE,
]


@pytest.mark.parametrize("value", _EXAMPLES, ids=lambda v: type(v).__name__)
def test_every_contract_type_round_trips_through_json(value: BaseModel) -> None:
    cls = type(value)
    assert cls.model_validate_json(value.model_dump_json()) == value
    assert cls.model_validate(value.model_dump()) == value


@pytest.mark.parametrize(
    "event",
    [
        MessageStart(id="r1", model="m", created=5),
        TextDelta(text="hé"),
        ToolCallStart(index=0, id="c", name="lookup"),
        ToolCallDelta(index=0, arguments='{"a"'),
        ToolCallEnd(index=0),
        UsageEvent(usage=Usage(input_tokens=1, output_tokens=2)),
        MessageEnd(finish_reason="length"),
        ErrorEvent(error=_ENVELOPE),
    ],
    ids=lambda e: e.type,
)
def test_every_stream_event_round_trips_through_the_union(event: Any) -> None:
    assert _EVENTS.validate_json(_EVENTS.dump_json(event)) == event


def test_image_data_urls_split_into_media_type_and_data() -> None:
    image = ImagePart.from_data_url("data:image/png;base64,iVBORw0KGgo=", detail="low")
    assert (image.media_type, image.data, image.url, image.detail) == (
        "image/png",
        "iVBORw0KGgo=",
        None,
        "low",
    )
    assert image.as_url() == "data:image/png;base64,iVBORw0KGgo="
    plain = ImagePart.from_data_url("https://example.com/a.png")
    assert (plain.url, plain.data) == ("https://example.com/a.png", None)


@settings(max_examples=150, deadline=None)
@given(message=messages())
def test_messages_round_trip(message: Message) -> None:
    assert Message.model_validate_json(message.model_dump_json()) == message
    assert Message.model_validate(message.model_dump()) == message


@settings(max_examples=100, deadline=None)
@given(request=chat_requests())
def test_chat_requests_round_trip(request: ChatRequest) -> None:
    assert ChatRequest.model_validate_json(request.model_dump_json()) == request
    assert ChatRequest.model_validate(request.model_dump()) == request


def _cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(response=chat_responses(), data=st.data())
def test_the_accumulator_rebuilds_the_response_its_events_came_from(
    response: ChatResponse, data: st.DataObject
) -> None:
    cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=5)
    events: list[StreamEvent] = [
        MessageStart(id=response.id, model=response.model, created=response.created)
    ]
    events += [TextDelta(text=piece) for piece in _cut(response.content, data.draw(cuts)) if piece]
    for index, call in enumerate(response.tool_calls):
        events.append(ToolCallStart(index=index, id=call.id, name=call.name))
        events += [
            ToolCallDelta(index=index, arguments=piece)
            for piece in _cut(call.arguments, data.draw(cuts))
            if piece
        ]
        events.append(ToolCallEnd(index=index))
    events += [UsageEvent(usage=response.usage), MessageEnd(finish_reason=response.finish_reason)]
    wire = [_EVENTS.validate_json(_EVENTS.dump_json(event)) for event in events]
    assert StreamAccumulator().extend(wire).response() == response


def test_the_accumulator_raises_the_streamed_error() -> None:
    accumulator = StreamAccumulator().extend(
        [MessageStart(id="r", model="m"), TextDelta(text="par"), ErrorEvent(error=_ENVELOPE)]
    )
    with pytest.raises(PalyraError) as caught:
        accumulator.response()
    assert caught.value.envelope == _ENVELOPE


def test_a_stream_without_usage_or_finish_is_labelled_estimated_and_inferred() -> None:
    response = (
        StreamAccumulator()
        .extend(
            [
                MessageStart(id="r", model="m"),
                ToolCallStart(index=1, id="b", name="second"),
                ToolCallStart(index=0, id="a", name="first"),
                ToolCallDelta(index=0, arguments="{}"),
            ]
        )
        .response()
    )
    assert [c.name for c in response.tool_calls] == ["first", "second"]
    assert response.tool_calls[1].arguments == "{}"
    assert response.finish_reason == "tool_calls"
    assert response.usage.source == "estimated"
