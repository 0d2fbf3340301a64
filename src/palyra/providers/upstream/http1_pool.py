"""A pooled keep-alive HTTP/1.1 transport for httpx2 clients, on plain asyncio protocols.

Providers keep talking to ``httpx2.AsyncClient`` (timeouts, headers, decoding and the error
types stay as they were); only the layer under it changes. The pool keeps at most
``max_connections`` connections (in use plus idle), reuses the most recently used idle
connection for the same origin, drops idle ones after ``keepalive_expiry_s``, and makes a
request that finds the pool full wait up to its pool timeout.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2

from palyra.providers.upstream.http1_connection import Http1Connection, request_head
from palyra.providers.upstream.limits import DEFAULT_MAX_BODY_BYTES

DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_MAX_CONNECTIONS = 4096
"""Connections one provider's pool may hold. An HTTP/1.1 connection carries one exchange at a
time, so this is also how many requests (each stream for its whole length) one provider can
have in flight before the next waits: model traffic is long-lived streams, and a bound near 100
queued every agent past the hundredth behind the others. A configured ``max_concurrency`` is
the limit meant to bite first (its queue is visible in metrics); this one only bounds file
descriptors."""
PoolKey = tuple[str, str, int, str]
ANSWER_HEADERS_EXTENSION = "palyra.answer_headers"
"""A response extension: the headers a client reads, collected while the head was parsed."""


class Http1Transport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncBaseTransport`` over pooled :class:`Http1Connection` objects."""

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        keepalive_expiry_s: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._max = max_connections
        self._max_body = max_body_bytes
        self._expiry_s = keepalive_expiry_s
        self._ssl_context = ssl_context
        self._idle: dict[PoolKey, list[Http1Connection]] = {}
        self._idle_count = 0
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def connections(self) -> tuple[int, int]:
        """(in use, idle): for tests and diagnostics."""
        return self._in_use, self._idle_count

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx2.create_ssl_context(trust_env=False)
        return self._ssl_context

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        host = url.host
        port = url.port or DEFAULT_PORTS[scheme]
        sni = str(request.extensions.get("sni_hostname") or host) if scheme == "https" else ""
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body, chunked = _request_body(request)
        head = request_head(request.method.encode(), url.raw_path, request.headers.raw)
        conn = await self.open((scheme, host, port, sni), head, body, timeouts, chunked=chunked)
        return httpx2.Response(
            conn.status,
            headers=conn.headers,
            stream=_ResponseBody(self, conn, timeouts.get("read")),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": conn.reason,
                ANSWER_HEADERS_EXTENSION: conn.answer_headers,
            },
        )

    async def open(
        self,
        key: PoolKey,
        head: bytes,
        body: bytes | AsyncIterator[bytes],
        timeouts: Mapping[str, float | None],
        *,
        chunked: bool = False,
    ) -> Http1Connection:
        """Send one request on a pooled connection and wait for the response head. The caller
        then owns the connection until :meth:`read_all` (or ``release``) gives it back."""
        if self._closed:
            raise httpx2.ConnectError("the upstream client is closed")
        conn = self._take_idle(key) or await self._acquire(key, timeouts)
        try:
            await self._exchange(conn, head, body, chunked, timeouts)
        except httpx2.RemoteProtocolError:
            stale = conn.exchanges > 1 and not conn.received and isinstance(body, bytes)
            self._release(conn, reuse=False)
            if not stale:
                raise
            # A kept-alive connection the server had already given up on: the request never
            # reached it, so it is safe to send once more on a fresh connection.
            conn = await self._acquire(key, timeouts, fresh=True)
            try:
                await self._exchange(conn, head, body, chunked, timeouts)
            except BaseException:
                self._release(conn, reuse=False)
                raise
        except BaseException:
            self._release(conn, reuse=False)
            raise
        return conn

    async def read_all(self, conn: Http1Connection, read_timeout: float | None) -> bytes:
        """The rest of ``conn``'s response body; the connection goes back to the pool."""
        try:
            body = await conn.read_body(read_timeout)
        except BaseException:
            self._release(conn, reuse=False)
            raise
        self._release(conn, reuse=True)
        return body

    async def _exchange(
        self,
        conn: Http1Connection,
        head: bytes,
        body: bytes | AsyncIterator[bytes],
        chunked: bool,
        timeouts: Mapping[str, float | None],
    ) -> None:
        if isinstance(body, bytes):
            if conn.write(head, body):
                await conn.drained(timeouts.get("write"))
        else:
            await conn.send(head, body, timeouts.get("write"), chunked=chunked)
        await conn.read_head(timeouts.get("read"))

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # -- the pool --------------------------------------------------------------------------

    async def _acquire(
        self, key: PoolKey, timeouts: Mapping[str, float | None], *, fresh: bool = False
    ) -> Http1Connection:
        loop = asyncio.get_running_loop()
        limit_s = timeouts.get("pool")
        deadline = None if limit_s is None else loop.time() + limit_s
        while True:
            conn = None if fresh else self._take_idle(key)
            if conn is not None:
                return conn
            if self._in_use + self._idle_count < self._max:
                break
            if self._idle_count:
                self._close_oldest_idle()  # room for this origin at another origin's expense
                continue
            await self._wait_for_release(deadline)
        self._in_use += 1
        try:
            return await self._connect(key, timeouts.get("connect"))
        except BaseException:
            self._in_use -= 1
            self._wake_one()
            raise

    def _take_idle(self, key: PoolKey) -> Http1Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be stale
            self._idle_count -= 1
            if conn.reusable and now - conn.idle_since < self._expiry_s:
                self._in_use += 1
                return conn
            conn.close()
        return None

    async def _wait_for_release(self, deadline: float | None) -> None:
        if self._closed:
            raise httpx2.ConnectError("the upstream client is closed")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, but leaving: the wake-up goes to the next in line
            if isinstance(exc, TimeoutError):
                raise httpx2.PoolTimeout(
                    f"all {self._max} upstream connections stayed busy past the pool timeout"
                ) from None
            raise

    def _close_oldest_idle(self) -> None:
        oldest_key: PoolKey | None = None
        oldest_at = float("inf")
        for key, conns in self._idle.items():
            if conns and conns[0].idle_since < oldest_at:
                oldest_key, oldest_at = key, conns[0].idle_since
        if oldest_key is not None:
            self._idle[oldest_key].pop(0).close()
            self._idle_count -= 1

    async def _connect(self, key: PoolKey, limit_s: float | None) -> Http1Connection:
        scheme, host, port, sni = key
        loop = asyncio.get_running_loop()
        tls = self._ssl() if scheme == "https" else None
        try:
            async with asyncio.timeout(limit_s):
                _, conn = await loop.create_connection(
                    lambda: Http1Connection(loop, key, self._max_body),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=sni if tls is not None else None,
                )
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:  # refused, unreachable, TLS failures (ssl.SSLError is an OSError)
            raise httpx2.ConnectError(f"could not connect to {host}:{port}: {exc}") from exc
        return conn

    def _release(self, conn: Http1Connection, *, reuse: bool) -> None:
        self._in_use -= 1
        if reuse and not self._closed and conn.complete and conn.keep_alive and conn.reusable:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.key, []).append(conn)
            self._idle_count += 1
        else:
            conn.close()
        if self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _ResponseBody(httpx2.AsyncByteStream):
    """The body of one response; closing it gives the connection back (or drops it)."""

    def __init__(self, pool: Http1Transport, conn: Http1Connection, timeout: float | None) -> None:
        self._pool = pool
        self._conn: Http1Connection | None = conn
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx2.StreamClosed()
        try:
            async for chunk in conn.body_chunks(self._timeout):
                yield chunk
        except BaseException:
            self._give_back(reuse=False)
            raise
        self._give_back(reuse=True)

    async def aclose(self) -> None:
        conn = self._conn
        if conn is not None:
            # A response not read to its end leaves bytes on the wire: that connection is done.
            self._give_back(reuse=conn.complete)

    def _give_back(self, *, reuse: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._release(conn, reuse=reuse)


def _request_body(request: httpx2.Request) -> tuple[bytes | AsyncIterator[bytes], bool]:
    """The body as bytes when httpx2 already holds it, else its stream; and whether to chunk it."""
    try:
        return request.content, False
    except httpx2.RequestNotRead:
        pass
    stream: Any = request.stream
    chunked = "content-length" not in request.headers
    return _aiter(stream), chunked


async def _aiter(stream: Any) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield bytes(chunk)
