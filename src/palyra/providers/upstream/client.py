"""The httpx2 client Palyra talks to upstreams with, minus what an API proxy must not do.

``httpx2.AsyncClient.send`` runs auth flows, follows redirects, keeps a cookie jar and wraps
every body in a timing stream. Palyra configures no auth on the client (credentials are
per-request headers), never follows redirects, and must not keep cookies: a jar shared by all
requests would carry cookies set for one credential into requests made with another. Dropping
those layers (and building requests without re-parsing the same base URL each time) is also a
measurable share of the daemon's CPU per proxied request.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx2
from httpx2._client import USE_CLIENT_DEFAULT, UseClientDefault

from palyra.model.forwarding import answer_headers
from palyra.providers.upstream.http1_connection import header_lines, request_head, request_line
from palyra.providers.upstream.http1_pool import ANSWER_HEADERS_EXTENSION, DEFAULT_PORTS
from palyra.providers.upstream.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_UPSTREAM_LIMITS,
    UpstreamLimits,
    body_too_large,
)

if TYPE_CHECKING:
    from palyra.providers.upstream.guard import GuardedTransport

_URL_CACHE_SIZE = 256
_SIZED_METHODS = frozenset({"POST", "PUT", "PATCH"})
# What the raw path can decode itself (zlib); httpx2's path may also offer br/zstd.
RAW_ACCEPT_ENCODING = "gzip, deflate"


class UpstreamReply(NamedTuple):
    """A whole upstream answer: status, raw headers, the decoded body and the headers a client
    reads (:func:`palyra.model.forwarding.answer_headers`, collected while the head was parsed).

    A named tuple, not a frozen dataclass: as immutable, and made without the three
    ``object.__setattr__`` calls a frozen dataclass's ``__init__`` costs per answer."""

    status_code: int
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes
    answer_headers: dict[str, str]

    @property
    def headers(self) -> httpx2.Headers:
        """Built on demand: the success path reads only the status and the body."""
        return httpx2.Headers(self.raw_headers)


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: bytes
    host_header: bytes


@dataclass(frozen=True, slots=True)
class _RawStart:
    """What a prepared request sends before the per-call headers, as the raw path writes it."""

    target: _Target
    start: bytes  # the request line and the host line
    sized: bool  # sends content-length even without a body (POST, PUT, PATCH)
    fixed: bytes  # the client's defaults merged with the fixed headers, one line each
    fixed_names: frozenset[str]


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A method, a URL and the headers that are the same on every call, checked and encoded
    once (see :meth:`UpstreamClient.prepare`). Holds no credential: those go per call."""

    method: str
    url: str
    headers: Mapping[str, str]
    raw: _RawStart | None  # None: the client sends through httpx2


def prepare(
    client: httpx2.AsyncClient, method: str, url: str, headers: Mapping[str, str]
) -> PreparedRequest:
    """:meth:`UpstreamClient.prepare` on an :class:`UpstreamClient`; a plain record otherwise."""
    if isinstance(client, UpstreamClient):
        return client.prepare(method, url, headers)
    return PreparedRequest(method, url, dict(headers), None)


def send_prepared(
    client: httpx2.AsyncClient,
    prepared: PreparedRequest,
    call_headers: Mapping[str, str],
    content: bytes | None,
) -> Awaitable[UpstreamReply]:
    """:func:`send_bytes` for a prepared request plus this call's own headers (a credential).

    A plain function: it hands back the client's coroutine rather than adding a layer."""
    if isinstance(client, UpstreamClient):
        return client.send_prepared(prepared, call_headers, content)
    headers = {**prepared.headers, **call_headers}
    return _through_httpx2(client, prepared.method, prepared.url, headers, content)


async def send_bytes(
    client: httpx2.AsyncClient,
    method: str,
    url: str,
    headers: Mapping[str, str],
    content: bytes | None,
) -> UpstreamReply:
    """One whole request/answer with a bytes body: the raw path on an :class:`UpstreamClient`,
    httpx2's own otherwise (clients built by tests or callers with other transports)."""
    if isinstance(client, UpstreamClient):
        return await client.send_bytes(method, url, headers, content)
    return await _through_httpx2(client, method, url, headers, content)


async def _through_httpx2(
    client: httpx2.AsyncClient,
    method: str,
    url: str,
    headers: Mapping[str, str],
    content: bytes | None,
) -> UpstreamReply:
    response = await client.request(method, url, headers=headers, content=content)
    body = await response.aread()
    raw = list(response.headers.raw)
    return UpstreamReply(response.status_code, raw, body, answer_headers(raw))


def answer_headers_of(response: httpx2.Response) -> dict[str, str]:
    """The headers a client reads from a (streamed) answer: as the pooled transport collected
    them, or picked from the headers when the answer came through another transport."""
    found = response.extensions.get(ANSWER_HEADERS_EXTENSION)
    if isinstance(found, dict):
        return found
    return answer_headers(response.headers.raw)


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    """``zlib.decompress`` that stops past ``limit`` bytes of output (a small compressed body
    can expand a thousandfold)."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        raise body_too_large(limit)
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _decode(body: bytes, encoding: bytes, limit: int = DEFAULT_MAX_BODY_BYTES) -> bytes:
    """Undo ``content-encoding`` (gzip, deflate; applied in order, so undone in reverse), to at
    most ``limit`` bytes."""
    for coding in reversed([c.strip().lower() for c in encoding.split(b",") if c.strip()]):
        try:
            if coding in (b"gzip", b"x-gzip"):
                body = _inflate(body, 16 + zlib.MAX_WBITS, limit)
            elif coding == b"deflate":
                try:
                    body = _inflate(body, zlib.MAX_WBITS, limit)
                except zlib.error:
                    body = _inflate(body, -zlib.MAX_WBITS, limit)  # raw deflate, as some send
            elif coding != b"identity":
                raise httpx2.DecodingError(
                    f"upstream answered with content-encoding {coding.decode('latin-1')!r}, "
                    f"which was not asked for (accept-encoding: {RAW_ACCEPT_ENCODING})"
                )
        except zlib.error as exc:
            raise httpx2.DecodingError(f"upstream sent a corrupt compressed body: {exc}") from exc
    return body


def _encoded(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    try:
        return [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
    except UnicodeEncodeError:
        raise httpx2.LocalProtocolError(
            "a request header holds characters HTTP headers cannot carry"
        ) from None


def _call_lines(fixed_names: frozenset[str], headers: Mapping[str, str]) -> bytes | None:
    """A call's own header lines (names lowercased); ``None`` if one of them is also a fixed
    header, which only :meth:`UpstreamClient.send_bytes`'s merge resolves."""
    lines: list[tuple[bytes, bytes]] = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in fixed_names:
            return None
        try:
            lines.append((lower.encode("ascii"), value.encode("ascii")))
        except UnicodeEncodeError:
            raise httpx2.LocalProtocolError(
                "a request header holds characters HTTP headers cannot carry"
            ) from None
    return header_lines(lines)


class UpstreamClient(httpx2.AsyncClient):
    """An ``httpx2.AsyncClient`` that sends straight to its transport: no auth flow, no
    redirects, no cookie jar. Everything else (timeouts, streaming, decoding, errors) is
    httpx2's own."""

    def __init__(
        self,
        *,
        transport: httpx2.AsyncBaseTransport,
        timeout: httpx2.Timeout,
        limits: UpstreamLimits = DEFAULT_UPSTREAM_LIMITS,
    ) -> None:
        super().__init__(
            transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
        )
        self.upstream_limits = limits
        self._upstream = transport
        self._timeout_extension = timeout.as_dict()
        self._default_headers = {k.lower(): v for k, v in self.headers.items()}
        self._urls: dict[str, httpx2.URL] = {}
        self._targets: dict[str, _Target] = {}
        raw_defaults = {**self._default_headers, "accept-encoding": RAW_ACCEPT_ENCODING}
        raw_defaults.pop("connection", None)  # keep-alive is HTTP/1.1's default
        self._raw_defaults = raw_defaults
        # The address guard over the pooled transport lets whole exchanges skip httpx2's models;
        # any other transport (tests inject some) goes through httpx2. Imported here: the guard
        # module builds these clients.
        from palyra.providers.upstream.guard import GuardedTransport

        self._raw_guard: GuardedTransport | None = (
            transport
            if isinstance(transport, GuardedTransport) and transport.raw_transport is not None
            else None
        )

    def build_request(  # type: ignore[override]
        self,
        method: str,
        url: httpx2.URL | str,
        *,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
        **kwargs: Any,
    ) -> httpx2.Request:
        """Plain requests (a URL, headers and bytes) are built directly; anything else
        (params, forms, files, JSON, cookies) goes through httpx2's general path."""
        simple = (
            all(value is None for value in kwargs.values())  # request() passes them all
            and isinstance(timeout, UseClientDefault)
            and isinstance(url, str)
            and (content is None or isinstance(content, bytes))
        )
        if not simple:
            return super().build_request(
                method, url, content=content, headers=headers, timeout=timeout, **kwargs
            )
        assert isinstance(url, str)
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpx2.URL(url)
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[url] = parsed
        merged = dict(self._default_headers)
        if headers:
            for name, value in headers.items():
                merged[name.lower()] = value
        return httpx2.Request(
            method,
            parsed,
            headers=merged,
            content=content,
            extensions={"timeout": self._timeout_extension},
        )

    async def send(
        self,
        request: httpx2.Request,
        *,
        stream: bool = False,
        auth: Any = USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> httpx2.Response:
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        request.extensions.setdefault("timeout", self._timeout_extension)
        response = await self._upstream.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response

    async def send_bytes(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | None
    ) -> UpstreamReply:
        """A whole exchange without httpx2's request and response models: same address guard,
        pool, timeouts and errors (httpx2's exception types), a fraction of the CPU."""
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        guard = self._raw_guard
        if guard is None:
            return await _through_httpx2(self, method, url, headers, content)
        target = self._target(url)
        merged = dict(self._raw_defaults)
        for name, value in headers.items():
            merged[name.lower()] = value
        lines = [(b"host", target.host_header)]
        if content is not None or method in _SIZED_METHODS:
            lines.append((b"content-length", b"%d" % len(content or b"")))
        lines += _encoded(merged)
        head = request_head(method.encode("ascii"), target.path, lines)
        return await self._exchange(guard, target, head, content)

    def prepare(self, method: str, url: str, headers: Mapping[str, str]) -> PreparedRequest:
        """Check and encode, once, what every call to ``method url`` with ``headers`` sends;
        :meth:`send_prepared` then adds only the content length and the per-call headers.

        The fixed headers are merged over the client's defaults exactly as :meth:`send_bytes`
        merges them (names lowercased, later ones win); a per-call header whose name is among
        them makes that call take :meth:`send_bytes`, so the result never differs."""
        fixed = dict(headers)
        if self._raw_guard is None:
            return PreparedRequest(method, url, fixed, None)
        target = self._target(url)
        merged = dict(self._raw_defaults)
        for name, value in fixed.items():
            merged[name.lower()] = value
        start = request_line(method.encode("ascii"), target.path) + header_lines(
            [(b"host", target.host_header)]
        )
        raw = _RawStart(
            target,
            start,
            method in _SIZED_METHODS,
            header_lines(_encoded(merged)),
            frozenset(merged),
        )
        return PreparedRequest(method, url, fixed, raw)

    async def send_prepared(
        self, prepared: PreparedRequest, call_headers: Mapping[str, str], content: bytes | None
    ) -> UpstreamReply:
        """One whole exchange of a request from :meth:`prepare` plus this call's headers."""
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        raw = prepared.raw
        own = None if raw is None else _call_lines(raw.fixed_names, call_headers)
        if raw is None or own is None:
            headers = {**prepared.headers, **call_headers}
            return await self.send_bytes(prepared.method, prepared.url, headers, content)
        guard = self._raw_guard
        assert guard is not None  # prepare() made no raw start without it
        length = b"content-length: %d\r\n" % len(content or b"")
        sized = content is not None or raw.sized
        head = b"".join((raw.start, length if sized else b"", raw.fixed, own, b"\r\n"))
        return await self._exchange(guard, raw.target, head, content)

    async def _exchange(
        self, guard: GuardedTransport, target: _Target, head: bytes, content: bytes | None
    ) -> UpstreamReply:
        conn = await guard.open_raw(
            target.scheme, target.host, target.port, head, content or b"", self._timeout_extension
        )
        body = await guard.read_all(conn, self._timeout_extension.get("read"))
        codings = conn.content_encodings
        if codings:
            # Several content-encoding fields are one list in field order (RFC 9110 5.3), applied
            # in that order, so undone from its end.
            coding = codings[0] if len(codings) == 1 else b",".join(codings)
            body = _decode(body, coding, self.upstream_limits.max_body_bytes)
        return UpstreamReply(conn.status, conn.headers, body, conn.answer_headers)

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parsed = httpx2.URL(url)
            if parsed.scheme not in DEFAULT_PORTS:
                raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {parsed.scheme!r}")
            port = parsed.port or DEFAULT_PORTS[parsed.scheme]
            host_header = parsed.netloc  # host[:port] as the URL spells it, IPv6 in brackets
            target = _Target(parsed.scheme, parsed.host, port, parsed.raw_path, host_header)
            if len(self._targets) >= _URL_CACHE_SIZE:
                self._targets.clear()
            self._targets[url] = target
        return target
