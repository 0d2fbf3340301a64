"""Audio transcription request and result types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TranscriptionFormat = Literal["json", "verbose_json", "text", "srt", "vtt"]


class TranscriptionRequest(BaseModel):
    """Audio travels as base64 in JSON: raw audio is rarely valid UTF-8."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    model: str = Field(min_length=1)
    audio: bytes = Field(min_length=1)
    filename: str = "audio.wav"
    media_type: str = "audio/wav"
    language: str | None = None
    prompt: str | None = None
    response_format: TranscriptionFormat = "json"
    timestamp_granularities: list[Literal["segment", "word"]] = Field(default_factory=list)
    temperature: float | None = Field(default=None, ge=0, le=1)


class TranscriptionSegment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: int
    start: float
    end: float
    text: str


class TranscriptionWord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    word: str
    start: float
    end: float


class TranscriptionResponse(BaseModel):
    """The text, plus segments and duration when the provider gives them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    language: str | None = None
    duration_s: float | None = None
    segments: list[TranscriptionSegment] = Field(default_factory=list)
    words: list[TranscriptionWord] = Field(default_factory=list)
