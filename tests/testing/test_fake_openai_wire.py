"""The fake's OpenAI endpoints, through plain httpx2 and through the official openai SDK."""

from __future__ import annotations

import base64
import io
import struct
import wave
from collections.abc import Iterator

import httpx2
import openai
import orjson
import pytest

from palyra.testing import FakeUpstream, ScriptedToolCall

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(stream_chunk_tokens=2, cached_tokens=1) as running:
        yield running


@pytest.fixture
def client(fake: FakeUpstream) -> openai.OpenAI:
    fake.clear()
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def _wav(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x80" * int(seconds * rate))
    return buf.getvalue()


def test_plain_http_chat_echoes_last_user_message_with_usage(fake: FakeUpstream) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello big world"},
        ],
    }
    r = httpx2.post(
        fake.openai_base_url + "/chat/completions", json=body, headers={"authorization": "Bearer k"}
    )
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "You said: hello big world",
        "refusal": None,
        "annotations": [],
    }
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] == 5
    assert data["usage"]["completion_tokens"] == 5
    assert data["usage"]["prompt_tokens_details"]["cached_tokens"] == 1


def test_sdk_chat_respects_max_tokens_and_stop(client: openai.OpenAI) -> None:
    msgs: list[dict[str, str]] = [{"role": "user", "content": "one two three four"}]
    cut = client.chat.completions.create(model="m", messages=msgs, max_tokens=3)  # type: ignore[arg-type]
    assert cut.choices[0].message.content == "You said: one"
    assert cut.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(model="m", messages=msgs, stop=["three"])  # type: ignore[arg-type]
    assert stopped.choices[0].message.content == "You said: one two "
    assert stopped.choices[0].finish_reason == "stop"


def test_sdk_stream_sends_role_chunks_of_n_words_finish_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "a b c d"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    texts = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert texts == ["You said: ", "a b ", "c d"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_raw_stream_ends_with_done_and_has_no_usage_without_include_usage(
    fake: FakeUpstream,
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx2.stream(
        "POST",
        fake.openai_base_url + "/chat/completions",
        json=body,
        headers={"authorization": "Bearer k"},
    ) as r:
        assert r.headers["content-type"] == "text/event-stream"
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    payloads = [orjson.loads(line[6:]) for line in lines[:-1]]
    assert all("usage" not in p for p in payloads)


def test_call_trigger_streams_tool_call_fragments_the_sdk_accumulates(
    client: openai.OpenAI,
) -> None:
    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": 'please call get_weather {"city": "Paris"}'}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    fragments = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    assert len(fragments) >= 2
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert orjson.loads(call.function.arguments) == {"city": "Paris", "days": 5}  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"


def test_tool_result_is_quoted_back(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "call get_weather"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert reply.choices[0].message.content == "Tool get_weather returned: sunny"


def test_scripted_tool_calls_win_once_then_text_resumes(
    fake: FakeUpstream, client: openai.OpenAI
) -> None:
    fake.script_tool_calls(ScriptedToolCall("get_weather", {"city": "Oslo"}), ("lookup", "{}"))
    msgs = [{"role": "user", "content": "no trigger here"}]
    first = client.chat.completions.create(model="m", messages=msgs, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    calls = first.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", '{"city":"Oslo"}'),
        ("lookup", "{}"),
    ]
    second = client.chat.completions.create(model="m", messages=msgs, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    assert second.choices[0].message.content == "You said: no trigger here"


def test_tool_choice_none_ignores_the_trigger(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "call get_weather"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
    )
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_sdk_embeddings_are_deterministic_unit_vectors_of_requested_size(
    client: openai.OpenAI, fmt: str
) -> None:
    a = client.embeddings.create(
        model="e", input=["red fox", "blue sky"], dimensions=64, encoding_format=fmt
    )  # type: ignore[arg-type]
    b = client.embeddings.create(model="e", input="red fox", dimensions=64, encoding_format=fmt)  # type: ignore[arg-type]
    first = a.data[0].embedding
    if isinstance(first, str):
        first = list(struct.unpack("<64f", base64.b64decode(first)))
    assert len(first) == 64
    assert sum(v * v for v in first) == pytest.approx(1.0, abs=1e-5)
    assert a.data[0].embedding == b.data[0].embedding
    assert a.data[0].embedding != a.data[1].embedding
    assert a.usage.prompt_tokens == 4


def test_plain_http_embeddings_base64_is_little_endian_float32(fake: FakeUpstream) -> None:
    r = httpx2.post(
        fake.openai_base_url + "/embeddings",
        json={"model": "e", "input": [[1, 2, 3]], "dimensions": 8, "encoding_format": "base64"},
        headers={"authorization": "Bearer k"},
    )
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert len(raw) == 32
    assert r.json()["usage"]["prompt_tokens"] == 3


def test_sdk_transcription_reads_wav_duration(client: openai.OpenAI) -> None:
    result = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", _wav(1.5)))
    assert result.text == "Fake transcript of a.wav: 1.50 seconds of audio."
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", _wav(1.5)), response_format="verbose_json"
    )
    assert verbose.duration == pytest.approx(1.5)
    assert verbose.segments is not None and verbose.segments[0].end == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", "Fake transcript of a.wav: 2.00 seconds of audio.\n"),
        (
            "srt",
            "1\n00:00:00,000 --> 00:00:02,000\nFake transcript of a.wav: 2.00 seconds of audio.\n\n",
        ),
        (
            "vtt",
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nFake transcript of a.wav: 2.00 seconds of audio.\n\n",
        ),
    ],
)
def test_plain_http_transcription_text_formats(fake: FakeUpstream, fmt: str, expected: str) -> None:
    r = httpx2.post(
        fake.openai_base_url + "/audio/transcriptions",
        data={"model": "whisper-1", "response_format": fmt},
        files={"file": ("a.wav", _wav(2.0), "audio/wav")},
        headers={"authorization": "Bearer k"},
    )
    assert r.status_code == 200
    assert r.text == expected
    recorded = fake.requests[-1].body
    assert recorded["file"] == {
        "filename": "a.wav",
        "content_type": "audio/wav",
        "size": len(_wav(2.0)),
    }


def test_broken_wav_is_a_400_naming_the_file(fake: FakeUpstream) -> None:
    r = httpx2.post(
        fake.openai_base_url + "/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"file": ("bad.wav", b"RIFF\x00\x00garbage", "audio/wav")},
        headers={"authorization": "Bearer k"},
    )
    assert r.status_code == 400
    assert "bad.wav" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "file"


def test_sdk_lists_openai_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4.1", "text-embedding-3-small", "whisper-1"]
