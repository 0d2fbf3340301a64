"""OpenAI embeddings and transcription wire formats at our edge, as pure functions.

Embeddings: request JSON -> neutral ``EmbeddingRequest``; ``EmbeddingResponse`` -> the ``list``
object, vectors as floats or as base64 of little-endian float32 (what OpenAI sends and its SDK
decodes). Transcriptions: multipart fields -> ``TranscriptionRequest``; ``TranscriptionResponse``
-> json, verbose_json, text, srt or vtt.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from palyra.daemon.surfaces.wire_checks import invalid
from palyra.model import (
    EmbeddingRequest,
    EmbeddingResponse,
    FailureClass,
    Limits,
    PalyraError,
    TranscriptionRequest,
    TranscriptionResponse,
    TranscriptionSegment,
)

TEXT_FORMATS = frozenset({"text", "srt", "vtt"})
_GRANULARITY_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join("input" if p == "inputs" else str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


def _inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        return raw
    if isinstance(raw, list) and raw and all(isinstance(item, int | list) for item in raw):
        raise invalid(
            "input holds token ids; Palyra embeds text only: send a string or an array of "
            "strings (decode the tokens first)",
            "input",
        )
    raise invalid("input must be a string or a non-empty array of strings", "input")


def parse_embedding_request(data: Any) -> EmbeddingRequest:
    """An OpenAI ``/v1/embeddings`` body as a neutral request, or a 400 naming the field."""
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    try:
        return EmbeddingRequest.model_validate(
            {
                "model": data.get("model"),
                "inputs": _inputs(data.get("input")),
                "dimensions": data.get("dimensions"),
                "encoding_format": data.get("encoding_format") or "float",
                "user": data.get("user"),
            }
        )
    except ValidationError as exc:
        raise invalid(_first_error(exc)) from exc


def encode_vector(vector: Sequence[float], encoding_format: str) -> list[float] | str:
    """Floats as they are, or base64 of little-endian float32 for ``base64``."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return list(vector)


def embedding_list_json(response: EmbeddingResponse, encoding_format: str) -> dict[str, Any]:
    """The OpenAI ``list`` of embeddings, in input order."""
    tokens = response.usage.input_tokens
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)}
            for i, v in enumerate(response.vectors)
        ],
        "model": response.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _field(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[-1] if values else None


def parse_transcription_fields(
    fields: Mapping[str, Sequence[str]],
    *,
    audio: bytes,
    filename: str,
    media_type: str,
    limits: Limits,
) -> TranscriptionRequest:
    """Multipart form fields plus the uploaded file as a neutral request; 413 when too large."""
    if len(audio) > limits.max_audio_bytes:
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            f"audio file {filename!r} is {len(audio)} bytes; the limit is "
            f"{limits.max_audio_bytes} bytes: split the recording or compress it",
            http_status=413,
            param="file",
            code="audio_too_large",
        )
    if not audio:
        raise invalid(f"audio file {filename!r} is empty", "file")
    granularities = [g for name in _GRANULARITY_FIELDS for g in fields.get(name, [])]
    temperature = _field(fields, "temperature")
    try:
        return TranscriptionRequest.model_validate(
            {
                "model": _field(fields, "model"),
                "audio": audio,
                "filename": filename,
                "media_type": media_type,
                "language": _field(fields, "language"),
                "prompt": _field(fields, "prompt"),
                "response_format": _field(fields, "response_format") or "json",
                "timestamp_granularities": granularities,
                "temperature": temperature,
            }
        )
    except ValidationError as exc:
        raise invalid(_first_error(exc)) from exc


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _segments(response: TranscriptionResponse) -> list[TranscriptionSegment]:
    """The provider's segments, or the whole text as one segment when it gave none."""
    if response.segments:
        return response.segments
    end = response.duration_s or 0.0
    return [TranscriptionSegment(id=0, start=0.0, end=end, text=response.text)]


def subtitles(response: TranscriptionResponse, kind: str) -> str:
    """SRT (numbered cues, comma millis) or WebVTT (header, dot millis)."""
    if kind == "srt":
        cues = [
            f"{n}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
            for n, s in enumerate(_segments(response), start=1)
        ]
        return "\n".join(cues)
    cues = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in _segments(response)
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def verbose_json(response: TranscriptionResponse, request: TranscriptionRequest) -> dict[str, Any]:
    """OpenAI's verbose transcription.

    Segment fields the neutral result does not carry (``seek``, ``tokens``, ``avg_logprob``,
    ``compression_ratio``, ``no_speech_prob``) are sent as zeros or empty, never guessed.
    """
    body: dict[str, Any] = {
        "text": response.text,
        "language": response.language or request.language or "unknown",
        "duration": response.duration_s or 0.0,
    }
    if response.duration_s is not None:
        body["usage"] = {"type": "duration", "seconds": response.duration_s}
    wanted = request.timestamp_granularities or ["segment"]
    if "segment" in wanted:
        body["segments"] = [
            {
                "id": s.id,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": [],
                "temperature": request.temperature or 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
            }
            for s in _segments(response)
        ]
    if "word" in wanted:
        body["words"] = [w.model_dump() for w in response.words]
    return body


def render_transcription(
    response: TranscriptionResponse, request: TranscriptionRequest
) -> tuple[Any, bool]:
    """(body, is_text): a JSON object for json/verbose_json, plain text for text/srt/vtt."""
    match request.response_format:
        case "text":
            return response.text + "\n", True
        case "srt" | "vtt":
            return subtitles(response, request.response_format), True
        case "verbose_json":
            return verbose_json(response, request), False
    return {"text": response.text}, False
