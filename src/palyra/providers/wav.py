"""Read the header facts of a WAV file (stdlib ``wave``): enough to report duration and format."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

from palyra.model import FailureClass, PalyraError


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def read_wav_info(data: bytes, *, filename: str = "audio") -> WavInfo:
    """Parse a PCM WAV header; anything else is an ``invalid_request`` that says only WAV is read."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            info = WavInfo(
                sample_rate=wav.getframerate(),
                channels=wav.getnchannels(),
                sample_width=wav.getsampwidth(),
                frames=wav.getnframes(),
            )
    except (wave.Error, EOFError, ValueError) as exc:
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            f"audio file {filename!r} is not a PCM WAV file ({exc}); this provider only "
            "understands WAV: convert it, e.g. `ffmpeg -i input -ac 1 -ar 16000 out.wav`",
            param="file",
            code="unsupported_audio_format",
        ) from exc
    if info.sample_rate <= 0:
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            f"audio file {filename!r} declares a sample rate of {info.sample_rate} Hz",
            param="file",
            code="unsupported_audio_format",
        )
    return info
