"""A small asyncio HTTP/1.1 server on httptools: keep-alive, chunked streaming, and the
misbehaviours a fake upstream must show on purpose (reset, cut, hang) that frameworks hide."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

import httptools

log = logging.getLogger("palyra.testing")

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS[529] = "Overloaded"


@dataclass(slots=True)
class HttpRequest:
    """One parsed request; header names are lowercased (the last value of a repeated name wins)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[HttpRequest, "Responder"], Awaitable[None]]


def _head(status: int, content_type: str, headers: Mapping[str, str] | None, extra: str) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        f"content-type: {content_type}",
    ]
    if headers:
        lines.extend(f"{k}: {v}" for k, v in headers.items())
    lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Responder:
    """Writes the answer to one request, or deliberately fails to."""

    __slots__ = ("_conn", "_keep_alive", "done", "started")

    def __init__(self, conn: _Connection, keep_alive: bool) -> None:
        self._conn = conn
        self._keep_alive = keep_alive
        self.started = False
        self.done = False

    def _connection_header(self) -> str:
        return "connection: keep-alive" if self._keep_alive else "connection: close"

    async def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A whole response with a Content-Length."""
        extra = f"content-length: {len(body)}\r\n{self._connection_header()}"
        self.started = self.done = True
        self._conn.write(_head(status, content_type, headers, extra) + body)
        if not self._keep_alive:
            self._conn.close()

    def send_partial(self, status: int, body: bytes, sent: int, content_type: str) -> None:
        """Announce ``len(body)`` bytes, send only ``sent`` of them, then close: a cut body."""
        extra = f"content-length: {len(body)}\r\nconnection: close"
        self.started = self.done = True
        self._conn.write(_head(status, content_type, None, extra) + body[:sent])
        self._conn.close()

    async def start_stream(
        self,
        status: int,
        content_type: str = "text/event-stream",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        extra = (
            f"transfer-encoding: chunked\r\ncache-control: no-cache\r\n{self._connection_header()}"
        )
        self.started = True
        self._conn.write(_head(status, content_type, headers, extra))
        await self._conn.drain()

    async def write(self, data: bytes) -> None:
        """One chunk of a started stream, flushed before returning (real streaming, not buffering)."""
        if data:
            self._conn.write(b"%x\r\n%b\r\n" % (len(data), data))
            await self._conn.drain()

    async def end_stream(self) -> None:
        self.done = True
        self._conn.write(b"0\r\n\r\n")
        if not self._keep_alive:
            self._conn.close()

    def close(self) -> None:
        """Close the connection now (FIN), whatever has been sent so far."""
        self.done = True
        self._conn.close()

    def reset(self) -> None:
        """Close with a TCP RST and no HTTP response: what a crashed upstream or a proxy drop looks like."""
        self.done = True
        self._conn.reset()

    async def hang(self) -> None:
        """Never answer; return only once the client (or the server's shutdown) closes the socket."""
        self.done = True
        await self._conn.closed


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._pending: deque[tuple[HttpRequest, bool]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("client went away"))
        if self._worker is not None:
            self._worker.cancel()

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # --- httptools callbacks ---
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        path, _, query = self._url.decode("latin-1").partition("?")
        request = HttpRequest(
            method=self._parser.get_method().decode("latin-1"),
            path=path,
            query=query,
            headers=self._headers,
            body=b"".join(self._body),
        )
        self._pending.append((request, self._parser.should_keep_alive()))
        if self._worker is None:
            self._worker = self._loop.create_task(self._serve_pending())

    # --- used by Responder ---
    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def drain(self) -> None:
        if self.closed.done():
            raise ConnectionResetError("client went away")
        if self._writable is not None and not self._writable.done():
            await self._writable

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def reset(self) -> None:
        if self._transport is None:
            return
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._transport.abort()

    async def _serve_pending(self) -> None:
        try:
            while self._pending:
                request, keep_alive = self._pending.popleft()
                responder = Responder(self, keep_alive)
                try:
                    await self._server.handler(request, responder)
                except (ConnectionError, asyncio.CancelledError):
                    return
                except Exception:
                    log.exception(
                        "fake upstream handler failed on %s %s", request.method, request.path
                    )
                    if not responder.started:
                        await responder.send(500, b'{"error": "fake upstream crashed"}')
                    else:
                        responder.close()
                if responder.done and (not keep_alive or self.closed.done()):
                    return
                if not responder.done:
                    self.close()
                    return
        finally:
            self._worker = None


class HttpServer:
    """Serves ``handler`` on a listening socket in the running loop until :meth:`stop`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen and return the bound port (``port=0`` picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=2048, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and drop every connection, hanging ones included."""
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            conn.close()
        await self._server.wait_closed()
        self._server = None
