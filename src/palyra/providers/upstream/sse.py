"""An incremental Server-Sent Events parser: feed bytes as they arrive, get events as they end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

from palyra.providers.upstream.limits import DEFAULT_MAX_EVENT_BYTES, event_too_large


class SSEEvent(NamedTuple):
    """One dispatched event. A named tuple: as immutable as a frozen dataclass, and cheaper to
    make (a stream makes one per chunk)."""

    event: str
    data: str
    id: str | None = None


class SSEDecoder:
    """Pure SSE decoding per the WHATWG rules; handles CRLF, LF and chunks split anywhere.

    An event (its unfinished line, or its data lines together) past ``max_event_bytes`` raises
    :class:`~palyra.providers.upstream.limits.UpstreamTooLarge`: nothing is held past that.
    """

    __slots__ = ("_buffer", "_data", "_event", "_id", "_left", "_max")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._max = max_event_bytes
        self._left = max_event_bytes  # data characters the current event may still take

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        if buffer.find(b"\r") == -1:
            # Line feeds only, as servers send them: decode the whole lines at once and split
            # them, where cutting line by line would scan and copy the rest of the buffer once
            # per line. (A line feed never sits inside a UTF-8 sequence, so decoding them
            # together replaces bad bytes exactly as decoding each line would.)
            whole, found, self._buffer = buffer.rpartition(b"\n")
            if not found:
                if len(buffer) > self._max:
                    raise event_too_large(self._max)
                return []
            lines = whole.decode("utf-8", errors="replace").split("\n")
        else:
            lines = [raw.decode("utf-8", errors="replace") for raw in self._cut_lines(buffer)]
        events: list[SSEEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        if self._left < 0 or len(self._buffer) > self._max:
            raise event_too_large(self._max)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: a final event without its blank line still counts."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        return events

    def _cut_lines(self, buffer: bytes) -> list[bytes]:
        """The whole lines in ``buffer``, whatever their ends (CR, LF, CRLF); the rest stays
        buffered, as does a last CR that may be the first half of a CRLF."""
        lines: list[bytes] = []
        start = 0
        lf = buffer.find(b"\n")
        cr = buffer.find(b"\r")
        while True:
            if lf != -1 and lf < start:
                lf = buffer.find(b"\n", start)
            if cr != -1 and cr < start:
                cr = buffer.find(b"\r", start)
            if cr != -1 and (lf == -1 or cr < lf):
                if cr + 1 == len(buffer):
                    break  # could be the first half of CRLF; wait for more
                end, skip = cr, (2 if lf == cr + 1 else 1)
            elif lf != -1:
                end, skip = lf, 1
            else:
                break
            lines.append(buffer[start:end])
            start = end + skip
        self._buffer = buffer[start:]
        return lines

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""  # no data lines: nothing is dispatched (WHATWG)
                return None
            if self._left < 0:
                raise event_too_large(self._max)
            event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            self._left = self._max
            return event
        if line.startswith("data: "):  # the usual line, without the general split below
            self._data.append(line[6:])
            self._left -= len(line)
            return None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._left -= len(line)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


async def aiter_sse(
    chunks: AsyncIterator[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> AsyncIterator[SSEEvent]:
    """Decode an async byte stream into SSE events, each yielded as soon as it is complete."""
    decoder = SSEDecoder(max_event_bytes)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event
