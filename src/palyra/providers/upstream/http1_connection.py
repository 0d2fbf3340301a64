"""One keep-alive HTTP/1.1 client connection: an asyncio protocol fed through httptools.

Why not httpcore: on the daemon's hot path its per-request bookkeeping (anyio streams, pool
expiry scans, h11 event objects) cost about a millisecond of CPU per proxied request; this is
the same protocol in a few callbacks. The pool (``http1_pool``) decides which connection a
request gets; this module only speaks the protocol and maps failures to httpx2's exceptions,
which ``classify_transport_error`` already understands.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import cast

import httptools
import httpx2

from palyra.model.forwarding import ANSWER_FIRST_BYTES, answer_header_name
from palyra.providers.upstream.coarse_timers import timers_for
from palyra.providers.upstream.limits import DEFAULT_MAX_BODY_BYTES, body_too_large

# Stop reading from the socket when this much response body waits unread (a slow consumer of a
# long stream); resume when it has been taken.
READ_HIGH_WATER = 256 * 1024
_UNBOUNDED = 1 << 62


class Http1Connection(asyncio.Protocol):
    """A connection that carries one exchange at a time and is reused while the server allows."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        key: tuple[str, str, int, str],
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.key = key
        self._max_body = max_body_bytes
        self._loop = loop
        self._timers = timers_for(loop)
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._error: httpx2.TransportError | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self.exchanges = 0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_encodings: list[bytes] = []  # each content-encoding header's value
        # The headers a client reads (rate limits, request ids, retry-after), collected as the
        # head is parsed: a second pass over twenty-odd headers per answer cost more.
        self.answer_headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        # Body bytes this exchange may still take: the whole-body bound, lifted for an event
        # stream (its events are bounded one by one where they are decoded).
        self._body_left = self._max_body
        self._declared = 0  # content-length, when the answer sends one

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx2.RemoteProtocolError("upstream switched protocols unexpectedly"))
        except httptools.HttpParserError as exc:
            self._fail(httpx2.RemoteProtocolError(f"upstream sent malformed HTTP: {exc}"))
        self._wake()

    def eof_received(self) -> bool | None:
        if self.headers_done and not self.complete and self._body_until_eof():
            self.complete = True  # a body without a length ends when the server closes
            self.keep_alive = False
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self._error is None:
            detail = f": {exc}" if exc else ""
            if self.headers_done:
                message = f"upstream closed the connection mid-response{detail}"
            else:
                message = f"upstream closed the connection without a response{detail}"
            self._error = httpx2.RemoteProtocolError(message)
        self._wake()
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if name[:1] in ANSWER_FIRST_BYTES:
            wanted = answer_header_name(name)
            if wanted is not None:
                self.answer_headers[wanted] = value.decode("latin-1")
                return
        # Noted as it arrives (the length test spares a lower() per header): a whole-body reader
        # would otherwise scan every header again for it.
        if len(name) == 16 and name.lower() == b"content-encoding":
            self.content_encodings.append(value)
        elif (
            len(name) == 12
            and name.lower() == b"content-type"
            and value[:17].lower() == b"text/event-stream"
        ):
            self._body_left = _UNBOUNDED
        elif len(name) == 14 and name.lower() == b"content-length" and value.isdigit():
            self._declared = int(value)

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # An interim answer (we never send Expect, but a server may still send one); the
            # parser reports the final response as a new message.
            self.headers = []
            self.content_encodings = []
            self.answer_headers = {}
            self.reason = b""
            return
        self.status = status
        self.headers_done = True
        self.keep_alive = self._parser.should_keep_alive()
        if self._declared > self._body_left:
            self._fail(body_too_large(self._max_body))  # refused before a byte of it is read

    def _body_until_eof(self) -> bool:
        """A body with neither a length nor chunks ends when the server closes. Asked only at
        EOF: scanning every answer's headers for it in ``on_headers_complete`` cost more than
        the rest of that callback."""
        return self.status not in (204, 304) and not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        )

    def on_body(self, body: bytes) -> None:
        self._body_left -= len(body)
        if self._body_left < 0:
            if self._error is None:
                self._chunks.clear()
                self._fail(body_too_large(self._max_body))
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.headers_done and self._error is None:
            self.complete = True
            self.keep_alive = self.keep_alive and self._parser.should_keep_alive()

    # -- used by the pool ------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return not self.closed and self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def write(self, head: bytes, body: bytes) -> bool:
        """Write a request whose body is in hand, without waiting; ``True`` when the transport's
        buffer is full and :meth:`drained` must be awaited before the answer is."""
        transport = self._begin()
        if len(body) < 65536:
            transport.write(head + body)  # one write, one segment for the usual request
        else:
            transport.write(head)
            transport.write(body)
        return self._drain is not None

    async def send(
        self,
        head: bytes,
        body: bytes | AsyncIterator[bytes],
        write_timeout: float | None,
        *,
        chunked: bool = False,
    ) -> None:
        """Write the request; a streamed body goes out chunked unless its length was declared."""
        if isinstance(body, bytes):
            if self.write(head, body):
                await self.drained(write_timeout)
            return
        transport = self._begin()
        transport.write(head)
        async for chunk in body:
            if chunk:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await self.drained(write_timeout)
        if chunked:
            transport.write(b"0\r\n\r\n")
        await self.drained(write_timeout)

    def _begin(self) -> asyncio.Transport:
        """A new exchange on this connection: fresh response state, the transport to write to."""
        self._reset()
        self._error = None
        self.exchanges += 1
        transport = self._transport
        if transport is None or self.closed:
            raise httpx2.RemoteProtocolError("upstream closed the connection before the request")
        return transport

    async def drained(self, limit_s: float | None) -> None:
        """Wait until the transport took what was written (after :meth:`write` said so)."""
        if self._drain is None:
            return
        if self.closed:
            raise httpx2.WriteError("upstream closed the connection while the request was sent")
        try:
            async with asyncio.timeout(limit_s):
                await self._drain
        except TimeoutError:
            raise httpx2.WriteTimeout("timed out sending the request upstream") from None
        if self.closed:
            raise httpx2.WriteError("upstream closed the connection while the request was sent")

    async def read_head(self, limit_s: float | None) -> None:
        """Wait until the status line and headers have arrived."""
        while not self.headers_done:
            if self._error is not None or self.closed:
                self._raise_if_failed()
            await self._wait(limit_s)

    async def body_chunks(self, limit_s: float | None) -> AsyncIterator[bytes]:
        """The response body as it arrives; raises when the connection breaks before its end."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= READ_HIGH_WATER // 4:
                    self._paused = False
                    if self._transport is not None:
                        self._transport.resume_reading()
                yield chunk
            if self.complete:
                return
            self._raise_if_failed()
            await self._wait(limit_s)

    async def read_body(self, limit_s: float | None) -> bytes:
        """The whole response body: :meth:`body_chunks` for a caller that wants it in one piece.

        A plain coroutine, not an async generator: each async generator costs the event loop's
        first-iteration hook and a WeakSet entry added and removed per response.
        """
        parts: list[bytes] = []
        chunks = self._chunks
        while True:
            if chunks:
                parts += chunks
                chunks.clear()
                self._buffered = 0
                if self._paused:
                    self._paused = False
                    if self._transport is not None:
                        self._transport.resume_reading()
            if self.complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            try:
                self._raise_if_failed()
            except httpx2.TransportError:
                parts.clear()  # the traceback keeps this frame; it must not keep the body
                raise
            await self._wait(limit_s)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
        if self.closed and not self.complete:
            raise httpx2.RemoteProtocolError("upstream closed the connection mid-response")

    async def _wait(self, limit_s: float | None) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        # A coarse timer: the deadline almost never fires, and a loop timer armed and cancelled
        # per wait costs a libuv timer each time.
        token = None if limit_s is None else self._timers.arm(limit_s, waiter, _expire)
        try:
            await waiter
        finally:
            self._waiter = None
            if token is not None:
                token.pop(waiter, None)  # CoarseTimers.cancel, without the call

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: httpx2.TransportError) -> None:
        self._error = error
        self.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx2.ReadTimeout("timed out waiting for the upstream to answer"))


def request_head(method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers; a header that could split the message is refused."""
    lines = header_lines(headers)
    return request_line(method, target) + lines + b"\r\n"


def request_line(method: bytes, target: bytes) -> bytes:
    """``METHOD target HTTP/1.1`` and its line end; a line break inside is refused."""
    line = b"%b %b HTTP/1.1\r\n" % (method, target)
    if line.count(b"\n") != 1 or line.count(b"\r") != 1:
        raise httpx2.LocalProtocolError("invalid request line: line breaks are not allowed")
    return line


def header_lines(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """``name: value`` lines, each with its line end; a header that could split the message is
    refused.

    Checked on the joined lines: a line break inside any part adds to its count of ``\r`` or
    ``\n`` (``x in bytes`` would cost a formatted TypeError per test inside CPython, which
    first tries the needle as an integer). Header names are also checked for ``:``, once each.
    """
    parts: list[bytes] = []
    for name, value in headers:
        if name not in _GOOD_NAMES:
            _check_name(name)
        parts += (name, b": ", value, b"\r\n")
    block = b"".join(parts)
    lines = len(headers)
    if block.count(b"\n") != lines or block.count(b"\r") != lines:
        for name, value in headers:
            if _LINE_BREAK.search(name) or _LINE_BREAK.search(value):
                raise httpx2.LocalProtocolError(
                    f"invalid header {name!r}: line breaks are not allowed"
                )
    return block


_LINE_BREAK = re.compile(rb"[\r\n]")
_BAD_NAME = re.compile(rb"[\r\n:]")
# Header names already seen to be well formed (Palyra's own and the configured extras: few).
_GOOD_NAMES: set[bytes] = set()
_MAX_GOOD_NAMES = 1024


def _check_name(name: bytes) -> None:
    if _BAD_NAME.search(name):
        raise httpx2.LocalProtocolError(
            f"invalid header name {name!r}: line breaks and colons are not allowed"
        )
    if len(_GOOD_NAMES) < _MAX_GOOD_NAMES:
        _GOOD_NAMES.add(name)
