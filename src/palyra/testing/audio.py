"""OpenAI ``/v1/audio/transcriptions``: multipart parsing and the five response formats (pure).

WAV uploads report their real duration (from the header). Other formats cannot be decoded
without codecs, so their duration is estimated at 16 kB per second (128 kbit/s) of upload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from palyra.model import PalyraError
from palyra.providers.wav import read_wav_info
from palyra.testing.wire_errors import invalid

FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
COMPRESSED_BYTES_PER_SECOND = 16_000
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_DISPOSITION = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> dict[str, str | UploadedFile]:
    """``multipart/form-data`` fields; files become :class:`UploadedFile`."""
    match = _BOUNDARY.search(content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise invalid("This endpoint expects multipart/form-data with a boundary.")
    fields: dict[str, str | UploadedFile] = {}
    for raw in body.split(b"--" + match.group(1).encode())[1:]:
        if raw.startswith(b"--"):
            break
        head, sep, data = raw.partition(b"\r\n\r\n")
        if not sep:
            raise invalid("Malformed multipart body: a part has no header/body separator.")
        data = data.removesuffix(b"\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (
                line.partition(":") for line in head.decode("latin-1").split("\r\n") if line
            )
        }
        params = dict(_DISPOSITION.findall(headers.get("content-disposition", "")))
        name = params.get("name")
        if name is None:
            continue
        if "filename" in params:
            ctype = headers.get("content-type", "application/octet-stream")
            fields[name] = UploadedFile(params["filename"], ctype, data)
        else:
            fields[name] = data.decode("utf-8", errors="replace")
    return fields


def recorded_fields(fields: dict[str, str | UploadedFile]) -> dict[str, Any]:
    return {
        k: (
            {"filename": v.filename, "content_type": v.content_type, "size": len(v.data)}
            if isinstance(v, UploadedFile)
            else v
        )
        for k, v in fields.items()
    }


def _duration(upload: UploadedFile) -> float:
    if upload.data[:4] != b"RIFF":
        return round(len(upload.data) / COMPRESSED_BYTES_PER_SECOND, 3)
    try:
        return read_wav_info(upload.data, filename=upload.filename).duration_s
    except PalyraError as exc:
        raise invalid(exc.envelope.message, "file", "invalid_file_format") from exc


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def transcribe(fields: dict[str, str | UploadedFile]) -> tuple[bytes | dict[str, Any], str]:
    """(JSON object or plain bytes, content type) for the requested ``response_format``."""
    upload = fields.get("file")
    if not isinstance(upload, UploadedFile):
        raise invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    fmt = fields.get("response_format", "json")
    if fmt not in FORMATS:
        allowed = ", ".join(f"'{f}'" for f in FORMATS)
        raise invalid(
            f"Invalid value: '{fmt}'. Supported values are: {allowed}.",
            "response_format",
            "invalid_value",
        )
    duration = _duration(upload)
    text = f"Fake transcript of {upload.filename}: {duration:.2f} seconds of audio."
    if fmt == "json":
        seconds = max(1, round(duration))
        return {"text": text, "usage": {"type": "duration", "seconds": seconds}}, "application/json"
    if fmt == "verbose_json":
        language = fields.get("language")
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": duration,
            "text": text,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": -0.1,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.0,
        }
        return {
            "task": "transcribe",
            "language": language if isinstance(language, str) else "english",
            "duration": duration,
            "text": text,
            "segments": [segment],
        }, "application/json"
    if fmt == "text":
        return (text + "\n").encode(), "text/plain; charset=utf-8"
    if fmt == "srt":
        body = f"1\n{_stamp(0, ',')} --> {_stamp(duration, ',')}\n{text}\n\n"
        return body.encode(), "text/plain; charset=utf-8"
    body = f"WEBVTT\n\n{_stamp(0, '.')} --> {_stamp(duration, '.')}\n{text}\n\n"
    return body.encode(), "text/vtt; charset=utf-8"
