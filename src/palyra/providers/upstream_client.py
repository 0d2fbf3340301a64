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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
from httpx2._client import USE_CLIENT_DEFAULT, UseClientDefault

from palyra.providers.http1_connection import request_head
from palyra.providers.http1_pool import DEFAULT_PORTS

if TYPE_CHECKING:
    from palyra.providers.upstream_guard import GuardedTransport

_URL_CACHE_SIZE = 256
# What the raw path can decode itself (zlib); httpx2's path may also offer br/zstd.
RAW_ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """A whole upstream answer: status, raw headers and the decoded body."""

    status_code: int
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes

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
    return UpstreamReply(response.status_code, list(response.headers.raw), body)


def _decode(body: bytes, encoding: bytes) -> bytes:
    """Undo ``content-encoding`` (gzip, deflate; applied in order, so undone in reverse)."""
    for coding in reversed([c.strip().lower() for c in encoding.split(b",") if c.strip()]):
        try:
            if coding in (b"gzip", b"x-gzip"):
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif coding == b"deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some send
            elif coding != b"identity":
                raise httpx2.DecodingError(
                    f"upstream answered with content-encoding {coding.decode('latin-1')!r}, "
                    f"which was not asked for (accept-encoding: {RAW_ACCEPT_ENCODING})"
                )
        except zlib.error as exc:
            raise httpx2.DecodingError(f"upstream sent a corrupt compressed body: {exc}") from exc
    return body


class UpstreamClient(httpx2.AsyncClient):
    """An ``httpx2.AsyncClient`` that sends straight to its transport: no auth flow, no
    redirects, no cookie jar. Everything else (timeouts, streaming, decoding, errors) is
    httpx2's own."""

    def __init__(self, *, transport: httpx2.AsyncBaseTransport, timeout: httpx2.Timeout) -> None:
        super().__init__(
            transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
        )
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
        from palyra.providers.upstream_guard import GuardedTransport

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
        if content is not None or method in ("POST", "PUT", "PATCH"):
            lines.append((b"content-length", b"%d" % len(content or b"")))
        try:
            lines += [
                (name.encode("ascii"), value.encode("ascii")) for name, value in merged.items()
            ]
        except UnicodeEncodeError:
            raise httpx2.LocalProtocolError(
                "a request header holds characters HTTP headers cannot carry"
            ) from None
        head = request_head(method.encode("ascii"), target.path, lines)
        conn = await guard.open_raw(
            target.scheme, target.host, target.port, head, content or b"", self._timeout_extension
        )
        body = await guard.read_all(conn, self._timeout_extension.get("read"))
        for raw_name, raw_value in conn.headers:
            if raw_name.lower() == b"content-encoding":
                body = _decode(body, raw_value)
        return UpstreamReply(conn.status, conn.headers, body)

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
