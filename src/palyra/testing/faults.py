"""Faults a test queues for upcoming requests: each one is consumed by exactly one request."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    SERVER_ERROR = "server_error"
    """``status`` (default 500, any 5xx) in the provider's error shape."""
    RATE_LIMIT = "rate_limit"
    """429 with ``Retry-After: retry_after_s`` (and ``retry-after-ms``)."""
    SLOW_FIRST_BYTE = "slow_first_byte"
    """Wait ``delay_ms`` before sending anything, then answer normally."""
    HANG = "hang"
    """Never answer; the client times out."""
    CONNECTION_RESET = "connection_reset"
    """TCP RST, no HTTP response at all."""
    STREAM_CUT = "stream_cut"
    """Streams: close the socket after ``after_chunks`` SSE events. Whole answers: close after
    half of the announced body."""
    MALFORMED_SSE = "malformed_sse"
    """Streams: after ``after_chunks`` events, one event whose data is not JSON, then a normal
    end. Whole answers: same as ``MALFORMED_JSON``."""
    MALFORMED_JSON = "malformed_json"
    """200 ``application/json`` whose body is cut in half."""
    CONTEXT_LENGTH = "context_length"
    """400 with the provider's context-length-exceeded error."""
    INVALID_KEY = "invalid_key"
    """401 exactly as for a wrong API key."""
    ECHO_KEY = "echo_key"
    """The key the request carried, repeated in an error as some providers do. Whole answers: a
    401 whose message holds the key. Streams: after ``after_chunks`` events, an error event
    whose message holds the key, then the end of the stream."""
    OVERSIZED = "oversized"
    """About ``size_bytes`` more than the answer: whole answers get a JSON body padded by that
    much; streams get, after ``after_chunks`` events, one event of that size."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One queued fault; ``model`` / ``path`` restrict which request may consume it."""

    kind: FaultKind
    status: int | None = None
    retry_after_s: float = 1.0
    delay_ms: float = 1000.0
    after_chunks: int = 2
    size_bytes: int = 1_000_000
    model: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if (
            self.kind is FaultKind.SERVER_ERROR
            and self.status is not None
            and not 500 <= self.status <= 599
        ):
            raise ValueError(f"Fault(kind=server_error) needs a 5xx status, got {self.status}")
        if (
            self.after_chunks < 0
            or self.delay_ms < 0
            or self.retry_after_s < 0
            or self.size_bytes < 0
        ):
            raise ValueError(
                "Fault after_chunks, delay_ms, retry_after_s and size_bytes must be >= 0"
            )

    def matches(self, path: str, model: str | None) -> bool:
        return (self.path is None or self.path == path) and (
            self.model is None or self.model == model
        )


class FaultQueue:
    """FIFO of faults, safe to push from a test thread while the server thread consumes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def take(self, path: str, model: str | None) -> Fault | None:
        """The oldest fault this request matches, removed from the queue."""
        if not self._faults:
            return None
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(path, model):
                    return self._faults.pop(i)
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)
