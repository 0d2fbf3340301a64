"""The deterministic provider's documented rules, streaming parity, embeddings and WAV input."""

from __future__ import annotations

import base64
import io
import math
import wave
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from palyra.model import (
    ChatRequest,
    EmbeddingRequest,
    FailureClass,
    ImagePart,
    Message,
    MessageEnd,
    MessageStart,
    NamedToolChoice,
    PalyraError,
    ResponseFormat,
    Role,
    StreamAccumulator,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolSpec,
    TranscriptionRequest,
    UsageEvent,
)
from palyra.providers.base import ModelProvider
from palyra.providers.deterministic import (
    DeterministicProvider,
    count_words,
    fill_schema,
    hash_embedding,
    split_words,
)

WEATHER = ToolSpec(
    name="get_weather",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "note": {"type": "string"},
        },
        "required": ["city", "days", "unit"],
    },
)
CLOCK = ToolSpec(name="get_time", parameters={"type": "object", "properties": {}})
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 60).decode()


def user(text: str) -> Message:
    return Message.text(Role.USER, text)


def req(*messages: Message, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="deterministic", messages=list(messages), **kwargs)


@pytest.fixture
def provider() -> DeterministicProvider:
    return DeterministicProvider()


async def streamed(provider: DeterministicProvider, request: ChatRequest) -> list[Any]:
    return [e async for e in provider.stream_chat(request)]


def test_satisfies_the_model_provider_protocol(provider: DeterministicProvider) -> None:
    assert isinstance(provider, ModelProvider)
    assert provider.kind == "deterministic"
    assert provider.capabilities.embeddings and provider.capabilities.transcription


async def test_reply_echoes_the_last_user_message(provider: DeterministicProvider) -> None:
    request = req(Message.text(Role.SYSTEM, "be brief"), user("first"), user("  hello   there  "))
    response = await provider.chat(request)
    assert response.content == "You said: hello   there"
    assert response.finish_reason == "stop"
    assert response.usage.input_tokens == 5
    assert response.usage.output_tokens == 4
    assert response.usage.source == "provider"


async def test_message_without_text_says_nothing(provider: DeterministicProvider) -> None:
    response = await provider.chat(req(Message(role=Role.USER, content=[])))
    assert response.content == "You said nothing."


async def test_images_are_described_not_refused(provider: DeterministicProvider) -> None:
    message = Message(
        role=Role.USER,
        content=[
            TextPart(text="what is this?"),
            ImagePart(data=PNG, media_type="image/png"),
            ImagePart(url="https://example.com/cat.jpg"),
        ],
    )
    response = await provider.chat(req(message))
    assert response.content == (
        "You said: what is this?\n[2 images: image/png, 68 bytes; https://example.com/cat.jpg]"
    )
    assert response.usage.input_tokens == 3 + 2


async def test_json_object_mode_wraps_the_reply(provider: DeterministicProvider) -> None:
    response = await provider.chat(
        req(user("hi"), response_format=ResponseFormat(type="json_object"))
    )
    assert orjson.loads(response.content) == {"reply": "You said: hi"}


async def test_json_schema_mode_fills_required_properties(provider: DeterministicProvider) -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "words": {"type": "integer"},
            "score": {"type": "number"},
            "ok": {"type": ["null", "boolean"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "mood": {"enum": ["calm", "angry"]},
            "nested": {"properties": {"x": {"const": 7}}},
            "optional": {"type": "string"},
        },
        "required": ["answer", "words", "score", "ok", "tags", "mood", "nested"],
    }
    fmt = ResponseFormat(type="json_schema", json_schema=schema)
    response = await provider.chat(req(user("three little words"), response_format=fmt))
    reply = "You said: three little words"
    assert orjson.loads(response.content) == {
        "answer": reply,
        "words": 3,
        "score": 3.0,
        "ok": True,
        "tags": [reply, reply],
        "mood": "calm",
        "nested": {"x": 7},
    }


def test_schema_without_required_fills_every_property() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}}}
    assert fill_schema(schema, "t", 1) == {"a": True, "b": None}


async def test_stop_sequence_cuts_the_reply(provider: DeterministicProvider) -> None:
    response = await provider.chat(req(user("alpha beta gamma"), stop=["beta", "zzz"]))
    assert response.content == "You said: alpha "
    assert response.finish_reason == "stop"


async def test_max_output_tokens_truncates_with_length(provider: DeterministicProvider) -> None:
    response = await provider.chat(req(user("one two three four"), max_output_tokens=3))
    assert response.content == "You said: one"
    assert response.finish_reason == "length"
    assert response.usage.output_tokens == 3


async def test_call_trigger_makes_a_tool_call_with_schema_arguments(
    provider: DeterministicProvider,
) -> None:
    request = req(user("please call get_weather for Paris"), tools=[WEATHER, CLOCK])
    response = await provider.chat(request)
    assert response.content == ""
    assert response.finish_reason == "tool_calls"
    [call] = response.tool_calls
    assert call.name == "get_weather"
    assert call.id.startswith("call_")
    assert orjson.loads(call.arguments) == {
        "city": "please for Paris",
        "days": 5,
        "unit": "celsius",
    }


async def test_json_pairs_in_the_text_override_arguments(provider: DeterministicProvider) -> None:
    text = 'Use `get_weather` {"city": "Oslo", "days": 2, "bogus": 1} and {not json}'
    response = await provider.chat(req(user(text), tools=[WEATHER]))
    args = response.tool_calls[0].arguments_json()
    assert args["city"] == "Oslo"
    assert args["days"] == 2
    assert "bogus" not in args


async def test_several_mentions_call_several_tools_unless_parallel_is_off(
    provider: DeterministicProvider,
) -> None:
    text = "call get_time then use get_weather and call get_time again"
    both = await provider.chat(req(user(text), tools=[WEATHER, CLOCK]))
    assert [c.name for c in both.tool_calls] == ["get_time", "get_weather"]
    assert len({c.id for c in both.tool_calls}) == 2
    one = await provider.chat(req(user(text), tools=[WEATHER, CLOCK], parallel_tool_calls=False))
    assert [c.name for c in one.tool_calls] == ["get_time"]


async def test_no_tool_call_without_trigger_or_when_choice_is_none(
    provider: DeterministicProvider,
) -> None:
    plain = await provider.chat(req(user("what is the weather"), tools=[WEATHER]))
    assert plain.tool_calls == [] and plain.content == "You said: what is the weather"
    unknown = await provider.chat(req(user("call get_stock"), tools=[WEATHER]))
    assert unknown.tool_calls == []
    refused = await provider.chat(
        req(user("call get_weather"), tools=[WEATHER], tool_choice="none")
    )
    assert refused.tool_calls == []


async def test_required_and_named_tool_choice_force_a_call(provider: DeterministicProvider) -> None:
    required = await provider.chat(req(user("hi"), tools=[CLOCK, WEATHER], tool_choice="required"))
    assert [c.name for c in required.tool_calls] == ["get_time"]
    named = NamedToolChoice(name="get_weather")
    forced = await provider.chat(req(user("hi"), tools=[CLOCK, WEATHER], tool_choice=named))
    assert [c.name for c in forced.tool_calls] == ["get_weather"]
    assert orjson.loads(forced.tool_calls[0].arguments)["city"] == "hi"


async def test_tool_result_gets_a_final_reply_quoting_it(provider: DeterministicProvider) -> None:
    first = await provider.chat(req(user("call get_weather"), tools=[WEATHER]))
    call = first.tool_calls[0]
    history = [
        user("call get_weather"),
        Message(role=Role.ASSISTANT, content=[call]),
        Message.tool_result(call.id, {"temp_c": 21}),
    ]
    final = await provider.chat(req(*history, tools=[WEATHER]))
    assert final.tool_calls == []
    assert final.finish_reason == "stop"
    assert final.content == 'Tool get_weather returned: {"temp_c":21}'


async def test_only_results_after_the_last_assistant_turn_are_quoted(
    provider: DeterministicProvider,
) -> None:
    old = ToolCallPart(id="a", name="get_time", arguments="{}")
    new = ToolCallPart(id="b", name="get_weather", arguments="{}")
    history = [
        user("x"),
        Message(role=Role.ASSISTANT, content=[old]),
        Message.tool_result("a", "noon"),
        Message(role=Role.ASSISTANT, content=[new]),
        Message.tool_result("b", "boom", is_error=True),
    ]
    final = await provider.chat(req(*history))
    assert final.content == "Tool get_weather failed: boom"


@pytest.mark.parametrize(
    "request_",
    [
        req(user("tell me about the sea, please")),
        req(user('call get_weather and use get_time {"city": "Rome"}'), tools=[WEATHER, CLOCK]),
        req(user("hi"), response_format=ResponseFormat(type="json_object")),
        req(user("one two three four five"), max_output_tokens=2),
    ],
    ids=["text", "tool-calls", "json", "length"],
)
async def test_streaming_accumulates_to_the_same_response(
    provider: DeterministicProvider, request_: ChatRequest
) -> None:
    whole = await provider.chat(request_)
    events = await streamed(provider, request_.model_copy(update={"stream": True}))
    assert StreamAccumulator().extend(events).response() == whole
    assert isinstance(events[0], MessageStart)
    assert isinstance(events[-2], UsageEvent) and isinstance(events[-1], MessageEnd)


async def test_text_streams_one_delta_per_word(provider: DeterministicProvider) -> None:
    events = await streamed(provider, req(user("a  b\tc")))
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "You ",
        "said: ",
        "a  ",
        "b\t",
        "c",
    ]


async def test_tool_arguments_stream_in_several_fragments(provider: DeterministicProvider) -> None:
    events = await streamed(provider, req(user("call get_weather"), tools=[WEATHER]))
    fragments = [e.arguments for e in events if isinstance(e, ToolCallDelta)]
    assert len(fragments) > 2
    assert orjson.loads("".join(fragments))["unit"] == "celsius"


async def test_chunk_delay_uses_the_injected_sleep() -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    slow = DeterministicProvider(chunk_delay_s=0.25, sleep=fake_sleep)
    events = [e async for e in slow.stream_chat(req(user("x y")))]
    assert waits == [0.25] * (len(events) - 1)


@given(st.text())
def test_split_words_reassembles_and_counts_words(text: str) -> None:
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert sum(1 for p in pieces if p.strip()) == count_words(text)


async def test_count_tokens_is_exact_word_count(provider: DeterministicProvider) -> None:
    call = ToolCallPart(id="c", name="f", arguments='{"a": 1}')
    request = req(
        user("one two"),
        Message(role=Role.ASSISTANT, content=[TextPart(text="three"), call]),
        Message.tool_result("c", "four five"),
    )
    count = await provider.count_tokens(request)
    assert (count.input_tokens, count.estimated) == (7, False)


async def test_embeddings_are_stable_normalised_and_sized(provider: DeterministicProvider) -> None:
    response = await provider.embed(
        EmbeddingRequest(model="deterministic-embed", inputs=["Hello world", "hello  WORLD", "x"])
    )
    first, second, other = response.vectors
    assert len(first) == 256
    assert first == second
    assert first != other
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0)
    # Pinned values: a change here means every stored vector changes meaning.
    half = math.sqrt(0.5)
    assert hash_embedding("hello world", 8) == pytest.approx([0, 0, 0, 0, 0, half, 0, -half])
    assert response.usage.input_tokens == 5


async def test_embedding_dimensions_are_honoured(provider: DeterministicProvider) -> None:
    response = await provider.embed(EmbeddingRequest(model="m", inputs=["  "], dimensions=17))
    [vector] = response.vectors
    assert len(vector) == 17
    assert math.isclose(sum(v * v for v in vector), 1.0)


def wav_bytes(seconds: float, rate: int = 16000, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * channels * int(seconds * rate))
    return buffer.getvalue()


async def test_transcription_reports_the_real_wav_duration(provider: DeterministicProvider) -> None:
    audio = wav_bytes(1.5)
    result = await provider.transcribe(TranscriptionRequest(model="w", audio=audio))
    assert result.text == "[deterministic transcript: 1.50 s of audio, 16000 Hz, 1 channel]"
    assert result.duration_s == 1.5
    assert result.segments[0].end == 1.5
    stereo = await provider.transcribe(
        TranscriptionRequest(model="w", audio=wav_bytes(0.25, rate=8000, channels=2))
    )
    assert stereo.text == "[deterministic transcript: 0.25 s of audio, 8000 Hz, 2 channels]"


async def test_non_wav_audio_is_an_invalid_request(provider: DeterministicProvider) -> None:
    request = TranscriptionRequest(model="w", audio=b"ID3\x03 not a wav", filename="song.mp3")
    with pytest.raises(PalyraError) as info:
        await provider.transcribe(request)
    assert info.value.failure_class is FailureClass.INVALID_REQUEST
    assert "song.mp3" in info.value.envelope.message
    assert "only understands WAV" in info.value.envelope.message


async def test_list_models_names_the_three_builtins(provider: DeterministicProvider) -> None:
    models = await provider.list_models()
    assert {m.id: sorted(m.capabilities) for m in models} == {
        "deterministic": ["chat", "json", "tools", "vision"],
        "deterministic-embed": ["embeddings"],
        "deterministic-whisper": ["transcription"],
    }
    assert {m.provider for m in models} == {"deterministic"}
