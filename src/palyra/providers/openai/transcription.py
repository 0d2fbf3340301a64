"""OpenAI transcription answers (json, verbose_json, text, srt, vtt) -> ``TranscriptionResponse``."""

from __future__ import annotations

from typing import Any

from palyra.model import TranscriptionResponse, TranscriptionSegment, TranscriptionWord
from palyra.model.transcription import TranscriptionFormat
from palyra.providers.openai.response import load_json_object, malformed


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _segments(raw: object) -> list[TranscriptionSegment]:
    out: list[TranscriptionSegment] = []
    for position, seg in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(seg, dict):
            continue
        seg_id = seg.get("id")
        out.append(
            TranscriptionSegment(
                id=seg_id if isinstance(seg_id, int) else position,
                start=_float(seg.get("start")) or 0.0,
                end=_float(seg.get("end")) or 0.0,
                text=str(seg.get("text") or ""),
            )
        )
    return out


def _words(raw: object) -> list[TranscriptionWord]:
    return [
        TranscriptionWord(
            word=str(w.get("word") or ""),
            start=_float(w.get("start")) or 0.0,
            end=_float(w.get("end")) or 0.0,
        )
        for w in (raw if isinstance(raw, list) else [])
        if isinstance(w, dict)
    ]


def parse_openai_transcription(
    body: bytes, response_format: TranscriptionFormat, *, provider: str | None = None
) -> TranscriptionResponse:
    """text/srt/vtt answers are the text itself; json and verbose_json are objects."""
    if response_format in ("text", "srt", "vtt"):
        return TranscriptionResponse(text=body.decode("utf-8", errors="replace"))
    data: dict[str, Any] = load_json_object(body, "the transcription answer", provider=provider)
    text = data.get("text")
    if not isinstance(text, str):
        raise malformed("the transcription answer has no 'text'", provider=provider)
    language = data.get("language")
    return TranscriptionResponse(
        text=text,
        language=language if isinstance(language, str) else None,
        duration_s=_float(data.get("duration")),
        segments=_segments(data.get("segments")),
        words=_words(data.get("words")),
    )
