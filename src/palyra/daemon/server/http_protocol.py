"""uvicorn's httptools protocol, able to send a whole response's head and body in one write.

uvicorn writes a response's head when the app sends ``http.response.start`` and its body when the
app sends ``http.response.body``: two ``send`` system calls, two TCP segments and two wake-ups of
the client for every whole answer (on the bench: about a fifth of the throughput). The protocol
here hands each request an ASGI scope extension, ``scope["extensions"][COALESCE]["transport"]``,
a :class:`CoalescingTransport`: writes made between its ``hold()`` and ``release()`` leave as one.
The hot path holds around the two messages of a response it has whole; streamed responses are
written exactly as uvicorn writes them.

The protocol also bounds a request's head, which httptools does not: it buffers a header value
whole before reporting it (a 300 MB header was accepted) and has no deadline (900 connections
sending a header byte now and then were held open indefinitely). See :class:`HeadLimits`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from palyra.config.schema import DaemonConfig
from palyra.providers.upstream.coarse_timers import CoarseTimers, timers_for

COALESCE = "palyra.coalesce"


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """``[daemon] max_header_bytes``, ``max_header_count`` and ``header_timeout_s``.

    The size is the request line's target plus every header name and value; the timeout runs
    from the connection's first byte (or its opening) until the head is complete, so a client
    that sends a head slowly, or nothing at all, is answered 408 and closed.
    """

    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    header_timeout_s: float = 10.0


REFUSAL_LINGER_S = 2.0
"""How long a refused connection is kept half-closed so the client can read the refusal."""


class _Refused(Exception):
    """Raised inside a parser callback to stop httptools after the refusal was written (it
    comes out of ``feed_data`` as ``HttpParserCallbackError``)."""


def _refusal(status: int, reason: bytes, message: str, code: str) -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    )
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )


class CoalescingTransport:
    """A client connection's transport; between :meth:`hold` and :meth:`release` its writes are
    collected and then written at once. Everything else is the socket transport's own."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] | None = None

    def hold(self) -> None:
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Write what was held, in one write (nothing when the connection is closing)."""
        held = self._held
        self._held = None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._transport.write(data)
        else:
            held.append(data)

    def close(self) -> None:
        self.release()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = self._held
        pending = sum(len(chunk) for chunk in held) if held else 0
        return self._transport.get_write_buffer_size() + pending

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        # Reading flow control, extra info, protocol switching: the real transport's own.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`CoalescingTransport`, offered to the app as the
    ``palyra.coalesce`` scope extension, with each request's head bounded by :attr:`limits`.

    Head bytes are counted per read while a head is open (an integer add), so the bound holds
    however the head is split; the exact size (target plus headers) is summed only when a head
    might be past it. The deadline is a coarse timer: a dict insert and delete per request.
    """

    limits: ClassVar[HeadLimits] = HeadLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))  # type: ignore[arg-type]
        self._refused = False
        self._head_open = True  # a head is being read (from the connection's opening)
        self._head_bytes = 0  # bytes of the reads made while it was open
        self._read_len = 0  # the latest read's length
        self._begin_read = 0  # the length of the read in which the current head began
        self._timers: CoarseTimers = timers_for(self.loop)
        self._deadline: dict[Any, Any] | None = self._timers.arm(
            self.limits.header_timeout_s, self, _head_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            deadline.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's own, plus the head count; a refusal from a callback ends the parse."""
        if self._refused:
            return  # lingering after a refusal: what the client still sends is dropped
        self._read_len = len(data)
        if self._head_open:
            self._head_bytes += self._read_len
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refused:
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self._head_open and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head_size()  # still incomplete, and already past the bound

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # ASGI extensions are dicts: this one holds the connection's coalescing transport.
        self.scope["extensions"] = {COALESCE: {"transport": self.transport}}
        self._head_open = True
        self._begin_read = self._read_len
        if self._deadline is None:
            self._deadline = self._timers.arm(self.limits.header_timeout_s, self, _head_timed_out)

    def on_headers_complete(self) -> None:
        limits = self.limits
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            deadline.pop(self, None)  # CoarseTimers.cancel, without the call
        self._head_open = False
        # Every byte of the head came in the reads counted, or in the one it began in.
        if self._head_bytes + self._begin_read > limits.max_header_bytes and (
            len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
            > limits.max_header_bytes
        ):
            self._refuse_head_size()
            raise _Refused
        self._head_bytes = 0
        if len(self.headers) > limits.max_header_count:
            self._refuse(
                431,
                b"Request Header Fields Too Large",
                f"the request has {len(self.headers)} headers; the limit is "
                f"{limits.max_header_count} ([daemon] max_header_count in palyra.toml)",
                "too_many_headers",
            )
            raise _Refused
        super().on_headers_complete()

    def _refuse_head_size(self) -> None:
        self._refuse(
            431,
            b"Request Header Fields Too Large",
            f"the request's target and headers are larger than {self.limits.max_header_bytes} "
            "bytes ([daemon] max_header_bytes in palyra.toml)",
            "request_header_too_large",
        )

    def _refuse(self, status: int, reason: bytes, message: str, code: str) -> None:
        """Answer without the app, close, and read nothing more from this connection."""
        self._refused = True
        self._head_open = False
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            deadline.pop(self, None)
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(_refusal(status, reason, message, code))
        # Closing now, with the client's bytes unread, would make the kernel answer them with a
        # reset that can destroy the refusal before the client reads it. Half-close instead,
        # drop what still arrives, and close when the client does or after a short linger.
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(REFUSAL_LINGER_S, transport.close)
        else:
            transport.close()

    def head_timed_out(self) -> None:
        self._deadline = None
        if self._head_open and not self.transport.is_closing():
            self._refuse(
                408,
                b"Request Timeout",
                f"the request head did not arrive within {self.limits.header_timeout_s:g} s "
                "([daemon] header_timeout_s in palyra.toml)",
                "request_timeout",
            )


def _head_timed_out(protocol: CoalescingHttpToolsProtocol) -> None:
    protocol.head_timed_out()


def protocol_for(daemon: DaemonConfig) -> type[CoalescingHttpToolsProtocol]:
    """The protocol class uvicorn should instantiate for ``[daemon]``'s head limits (uvicorn
    takes a class, and makes one instance per connection)."""
    limits = HeadLimits(daemon.max_header_bytes, daemon.max_header_count, daemon.header_timeout_s)
    if limits == CoalescingHttpToolsProtocol.limits:
        return CoalescingHttpToolsProtocol
    return type("CoalescingHttpToolsProtocol", (CoalescingHttpToolsProtocol,), {"limits": limits})
