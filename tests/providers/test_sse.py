"""The incremental SSE decoder: line endings, fields, comments, and chunking anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.providers.upstream.sse import SSEDecoder, SSEEvent, aiter_sse


def _decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.flush()


def test_lf_cr_and_crlf_all_end_lines() -> None:
    expected = [SSEEvent("message", "a"), SSEEvent("message", "b")]
    assert _decode(b"data: a\n\ndata: b\n\n") == expected
    assert _decode(b"data: a\r\rdata: b\r\r") == expected
    assert _decode(b"data: a\r\n\r\ndata: b\r\n\r\n") == expected


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [SSEEvent("message", "a")]
    assert decoder.flush() == []


def test_an_event_is_yielded_as_soon_as_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"x":') == []
    assert decoder.feed(b" 1}\n") == []
    assert decoder.feed(b"\n") == [SSEEvent("message", '{"x": 1}')]


def test_comments_are_ignored() -> None:
    assert _decode(b": keep-alive\n\n:another\ndata: x\n\n") == [SSEEvent("message", "x")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert _decode(b"data: one\ndata:two\ndata\ndata:  three\n\n") == [
        SSEEvent("message", "one\ntwo\n\n three")
    ]


def test_event_and_id_fields_are_kept_and_the_id_persists() -> None:
    stream = b"event: message_start\nid: 7\ndata: {}\n\ndata: next\n\nid\ndata: reset\n\n"
    assert _decode(stream) == [
        SSEEvent("message_start", "{}", "7"),
        SSEEvent("message", "next", "7"),
        SSEEvent("message", "reset", ""),
    ]


def test_a_final_event_without_its_blank_line_still_counts() -> None:
    assert _decode(b"data: a\n\ndata: [DONE]") == [
        SSEEvent("message", "a"),
        SSEEvent("message", "[DONE]"),
    ]
    assert _decode(b"data: last\r") == [SSEEvent("message", "last")]


def test_an_event_with_no_data_lines_is_not_dispatched() -> None:
    assert _decode(b"event: ping\n\ndata: x\n\n") == [SSEEvent("message", "x")]
    assert _decode(b"event: ping\n") == []


def test_unknown_fields_are_ignored_and_one_leading_space_is_stripped() -> None:
    assert _decode(b"retry: 100\nfoo: bar\ndata:   spaced\n\n") == [SSEEvent("message", "  spaced")]


def test_utf8_split_inside_a_character_survives() -> None:
    raw = "data: héllo €\n\n".encode()
    cut = raw.index("€".encode()) + 1
    assert _decode(raw[:cut], raw[cut:]) == [SSEEvent("message", "héllo €")]


async def test_aiter_sse_yields_events_from_an_async_byte_stream() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b"event: a\nda", b"ta: 1\n\nda", b"ta: 2"):
            yield piece

    assert [event async for event in aiter_sse(chunks())] == [
        SSEEvent("a", "1"),
        SSEEvent("message", "2"),
    ]


_line_end = st.sampled_from(["\n", "\r", "\r\n"])
_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n", exclude_categories=("Cs",)),
    max_size=20,
)
_field_line = st.one_of(
    st.builds(lambda v: f"data: {v}", _value),
    st.builds(lambda v: f"data:{v}", _value),
    st.builds(lambda v: f"event: {v}", _value),
    st.builds(lambda v: f"id: {v}", _value.filter(lambda v: "\0" not in v)),
    st.builds(lambda v: f": {v}", _value),
)


@st.composite
def _streams(draw: st.DrawFn) -> bytes:
    blocks = draw(st.lists(st.lists(_field_line, min_size=1, max_size=5), max_size=6))
    text = ""
    for block in blocks:
        for line in block:
            text += line + draw(_line_end)
        text += draw(_line_end)
    return text.encode()


@settings(max_examples=300, deadline=None)
@given(stream=_streams(), data=st.data())
def test_any_chunking_yields_the_same_events(stream: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _decode(*chunks) == _decode(stream)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.text(alphabet="abcdefghij_", min_size=1, max_size=12),
            st.lists(_value, min_size=1, max_size=3),
        ),
        max_size=6,
    ),
    line_end=_line_end,
    data=st.data(),
)
def test_encoded_events_decode_back_whatever_the_chunking(
    events: list[tuple[str, list[str]]], line_end: str, data: st.DataObject
) -> None:
    text = "".join(
        f"event: {name}{line_end}" + "".join(f"data: {line}{line_end}" for line in lines) + line_end
        for name, lines in events
    )
    raw = text.encode()
    size = data.draw(st.integers(min_value=1, max_value=max(1, len(raw))))
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    assert _decode(*chunks) == [SSEEvent(name, "\n".join(lines)) for name, lines in events]


class _LineByLine:
    """The decoder as first written: it cuts one line at a time off the buffer. The faster
    decoder must give the very same events and keep the same rest for any bytes."""

    def __init__(self) -> None:
        self.buffer = b""
        self.event = ""
        self.data: list[str] = []
        self.id: str | None = None

    def feed(self, chunk: bytes) -> list[tuple[str, str, str | None]]:
        self.buffer += chunk
        events = []
        while True:
            cut = self._next_line_end()
            if cut is None:
                return events
            end, skip = cut
            raw, self.buffer = self.buffer[:end], self.buffer[end + skip :]
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)

    def flush(self) -> list[tuple[str, str, str | None]]:
        return self.feed(b"\n\n") if self.buffer or self.data else []

    def _next_line_end(self) -> tuple[int, int] | None:
        buf = self.buffer
        lf, cr = buf.find(b"\n"), buf.find(b"\r")
        if cr == -1 and lf == -1:
            return None
        if cr != -1 and (lf == -1 or cr < lf):
            if cr + 1 == len(buf):
                return None
            return (cr, 2) if buf[cr + 1 : cr + 2] == b"\n" else (cr, 1)
        return lf, 1

    def _line(self, line: str) -> tuple[str, str, str | None] | None:
        if not line:
            if not self.data:
                self.event = ""
                return None
            event = (self.event or "message", "\n".join(self.data), self.id)
            self.event, self.data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        elif name == "id":
            self.id = value
        return None


_wire_bytes = st.lists(
    st.one_of(
        st.sampled_from([b"data: ", b"data:", b"event: ", b"id: ", b": ", b"data", b"retry: 1"]),
        st.sampled_from([b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n"]),
        st.binary(max_size=12),  # anything, invalid UTF-8 included
        st.text(max_size=8).map(lambda t: t.encode()),
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(stream=_wire_bytes, data=st.data())
def test_the_decoder_agrees_with_line_by_line_decoding(stream: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    fast, slow = SSEDecoder(), _LineByLine()
    for chunk in chunks:
        assert [tuple(e) for e in fast.feed(chunk)] == slow.feed(chunk)
    assert [tuple(e) for e in fast.flush()] == slow.flush()
