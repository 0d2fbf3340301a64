"""``POST /v1/audio/transcriptions`` driven by the official ``openai`` SDK over real HTTP."""

from __future__ import annotations

import io
import wave
from typing import Any

import httpx2
import openai
import pytest
from openai.types.audio import Transcription, TranscriptionVerbose

from palyra.config.schema import default_config
from palyra.daemon import AppState
from palyra.daemon.surfaces.openai.media_format import subtitles
from palyra.model import Limits, TranscriptionResponse, TranscriptionSegment

RunningDaemon = Any
StartDaemon = Any

TRANSCRIPT = "[deterministic transcript: 1.50 s of audio, 16000 Hz, 1 channel]"


def make_wav(seconds: float = 1.5, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def transcribe(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.audio.transcriptions.create(
        model="whisper", file=("speech.wav", make_wav(), "audio/wav"), **kwargs
    )


def test_json_is_the_default_format(client: openai.OpenAI) -> None:
    result = transcribe(client)
    assert isinstance(result, Transcription)
    assert result.text == TRANSCRIPT


def test_verbose_json_has_duration_language_and_segments(daemon: RunningDaemon) -> None:
    result = transcribe(daemon.openai_client(), response_format="verbose_json", language="en")
    assert isinstance(result, TranscriptionVerbose)
    assert (result.duration, result.language, result.text) == (1.5, "en", TRANSCRIPT)
    assert [(s.start, s.end, s.text) for s in result.segments or []] == [(0.0, 1.5, TRANSCRIPT)]
    assert result.words is None
    response = httpx2.post(
        f"{daemon.url}/v1/audio/transcriptions",
        data={"model": "whisper", "response_format": "verbose_json"},
        files={"file": ("a.wav", make_wav(), "audio/wav")},
        headers=daemon.headers,
    )
    TranscriptionVerbose.model_validate(response.json(), strict=True)


def test_word_granularity_adds_words_and_drops_default_segments(client: openai.OpenAI) -> None:
    result = transcribe(client, response_format="verbose_json", timestamp_granularities=["word"])
    assert result.words == []
    assert result.segments is None


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", TRANSCRIPT + "\n"),
        ("srt", f"1\n00:00:00,000 --> 00:00:01,500\n{TRANSCRIPT}\n"),
        ("vtt", f"WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n{TRANSCRIPT}\n"),
    ],
)
def test_text_formats_are_plain_text(daemon: RunningDaemon, fmt: str, expected: str) -> None:
    assert transcribe(daemon.openai_client(), response_format=fmt) == expected
    response = httpx2.post(
        f"{daemon.url}/v1/audio/transcriptions",
        data={"model": "whisper", "response_format": fmt},
        files={"file": ("a.wav", make_wav(), "audio/wav")},
        headers=daemon.headers,
    )
    assert response.headers["content-type"].startswith("text/plain")


def test_subtitles_number_cues_and_format_hours() -> None:
    response = TranscriptionResponse(
        text="a b",
        segments=[
            TranscriptionSegment(id=0, start=0.0, end=1.25, text=" a"),
            TranscriptionSegment(id=1, start=3599.9996, end=3661.5, text="b "),
        ],
    )
    assert subtitles(response, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,250\na\n\n2\n01:00:00,000 --> 01:01:01,500\nb\n"
    )
    assert subtitles(response, "vtt").startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\na\n")


def test_non_wav_upload_is_400_naming_the_file(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(
            model="whisper", file=("song.mp3", b"ID3\x03fake mp3 bytes", "audio/mpeg")
        )
    assert info.value.code == "unsupported_audio_format"
    assert "'song.mp3' is not a PCM WAV file" in info.value.message


def test_audio_over_the_limit_is_413(start_daemon: StartDaemon) -> None:
    state = AppState.from_config(default_config(), limits=Limits(max_audio_bytes=1000))
    client = start_daemon(state).openai_client()
    with pytest.raises(openai.APIStatusError) as info:
        transcribe(client)
    assert info.value.status_code == 413
    assert "the limit is 1000 bytes" in info.value.message


@pytest.mark.parametrize(
    ("data", "files", "expected"),
    [
        ({"model": "whisper"}, None, "multipart/form-data"),
        ({"model": "whisper"}, {"other": ("a.wav", b"x")}, "part named 'file' is required"),
        ({}, {"file": ("a.wav", b"x")}, "model"),
        (
            {"model": "whisper", "response_format": "xml"},
            {"file": ("a.wav", b"x")},
            "response_format",
        ),
        ({"model": "whisper", "temperature": "3"}, {"file": ("a.wav", b"x")}, "temperature"),
        ({"model": "whisper"}, {"file": ("a.wav", b"")}, "'a.wav' is empty"),
    ],
    ids=["not-multipart", "no-file", "no-model", "bad-format", "bad-temperature", "empty"],
)
def test_bad_forms_are_400_in_openai_shape(
    daemon: RunningDaemon, data: dict[str, str], files: Any, expected: str
) -> None:
    url = f"{daemon.url}/v1/audio/transcriptions"
    response = httpx2.post(url, data=data, files=files or None, headers=daemon.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert expected in error["message"]


def test_unknown_model_is_404_and_a_chat_model_is_400(client: openai.OpenAI) -> None:
    wav = ("a.wav", make_wav(), "audio/wav")
    with pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="whisper-9", file=wav)
    with pytest.raises(openai.BadRequestError, match="does not support transcription"):
        client.audio.transcriptions.create(model="default", file=wav)
