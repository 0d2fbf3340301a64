"""What the fake upstream received, kept for assertions."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as received. ``body`` is the parsed JSON, the multipart fields (files as
    ``{"filename", "content_type", "size"}``), or ``None`` when it did not parse."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    raw_body: bytes
    received_at: float

    @property
    def model(self) -> str | None:
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else None

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k in SECRET_HEADERS else v) for k, v in self.headers.items()}
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, model={self.model!r}, "
            f"headers={shown!r}, body_bytes={len(self.raw_body)}, received_at={self.received_at})"
        )


class RequestLog:
    """Append-only list shared between the server thread and the test thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
