"""Fail-closed upstreams: which base URLs are acceptable, and which addresses we connect to.

Two layers. :func:`check_base_url` runs when config loads and when a provider is built (the
rule is :func:`palyra.net.base_url.base_url_problem`, which ``palyra config check`` applies too).
:class:`GuardedTransport` runs on every request: it resolves the host itself, refuses private,
link-local, multicast, reserved, unspecified and CGNAT addresses (the table is
:mod:`palyra.net.addresses`, the same the config check uses), and connects to exactly the
address it checked (the TLS name stays the hostname), so DNS rebinding between check and
connect has no window.

Loopback (127.0.0.0/8, ::1, ``localhost``) is always allowed: it is where local model servers
and tests live. Every other non-global address needs ``allow_private_base_url = true`` on the
provider; a URL that comes from a request (the console) can never turn that on (see
``palyra.daemon.surfaces.console.upstream_urls``). A refusal for an address has the code
``upstream_address_refused``, so callers that must not describe the target can tell it apart.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx2

from palyra.model import FailureClass, PalyraError
from palyra.net.addresses import IPAddress, blocked_reason, is_loopback, parse_ip
from palyra.net.base_url import ADDRESS_REFUSED, OPT_IN_HINT, base_url_problem
from palyra.providers.upstream.client import UpstreamClient
from palyra.providers.upstream.http1_connection import Http1Connection
from palyra.providers.upstream.http1_pool import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORTS,
    Http1Transport,
)
from palyra.providers.upstream.limits import DEFAULT_UPSTREAM_LIMITS, UpstreamLimits

T = TypeVar("T")

Resolver = Callable[[str, int], Awaitable[list[str]]]


@functools.lru_cache(maxsize=1024)
def _allowed_literal(host: str) -> str | None:
    """The address of an IP-literal ``host`` that is public or loopback; ``None`` when ``host``
    is a name or a blocked address. Cached: the same few literals come on every request, and
    checking one (``ipaddress`` properties, ``str``) is a measurable share of a request."""
    address = parse_ip(host)
    if address is None or blocked_reason(address) is not None:
        return None
    return str(address)


def _config_error(message: str, provider_id: str | None, code: str) -> PalyraError:
    where = f"provider {provider_id!r}: " if provider_id else ""
    return PalyraError.of(FailureClass.CONFIG, where + message, code=code)


def check_base_url(url: str, *, allow_private: bool, provider_id: str | None = None) -> None:
    """Raise the ``config`` error of :func:`palyra.net.base_url.base_url_problem` (the one rule
    that ``palyra config check`` applies too); code ``upstream_address_refused`` when the URL
    is refused for the address it names, ``upstream_refused`` otherwise."""
    problem = base_url_problem(url, allow_private=allow_private)
    if problem is not None:
        code = ADDRESS_REFUSED if problem.address else "upstream_refused"
        raise _config_error(problem.message, provider_id, code)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the order the system resolver prefers."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(slots=True)
class _Resolved:
    addresses: list[str]
    expires_at: float


class GuardedTransport(httpx2.AsyncBaseTransport):
    """Wraps a transport so every connection goes to a checked, public (or loopback) address.

    Resolutions are cached for ``cache_ttl_s`` (on the injected ``clock``); addresses are tried
    in resolver order, moving on only when connecting fails, so a dual-stack ``localhost``
    reaches a server bound to either family. With ``allow_private`` requests pass unchanged.
    """

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        allow_private: bool,
        *,
        provider_id: str | None = None,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.monotonic,
        cache_ttl_s: float = 30.0,
    ) -> None:
        self._inner = inner
        self._allow_private = allow_private
        self._provider_id = provider_id
        self._resolver = resolver
        self._clock = clock
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[tuple[str, int], _Resolved] = {}
        self._raw = inner if isinstance(inner, Http1Transport) else None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._allow_private:
            return await self._inner.handle_async_request(request)
        host = request.url.host
        port = request.url.port or DEFAULT_PORTS.get(request.url.scheme, 443)

        async def attempt(address: str) -> httpx2.Response:
            return await self._inner.handle_async_request(self._pinned(request, host, address))

        return await self._first_reachable(host, port, attempt)

    async def _first_reachable(
        self, host: str, port: int, attempt: Callable[[str], Awaitable[T]]
    ) -> T:
        """``attempt`` at each checked address in turn until one connects."""
        last_error: httpx2.ConnectError | None = None
        for address in await self._checked_addresses(host, port):
            try:
                result = await attempt(address)
            except httpx2.ConnectError as exc:
                last_error = exc
                continue
            self._prefer(host, port, address)
            return result
        assert last_error is not None
        raise last_error

    @property
    def raw_transport(self) -> Http1Transport | None:
        """The pooled transport underneath, when requests may skip httpx2's models."""
        return self._raw

    def open_raw(
        self,
        scheme: str,
        host: str,
        port: int,
        head: bytes,
        body: bytes,
        timeouts: Mapping[str, float | None],
    ) -> Awaitable[Http1Connection]:
        """:meth:`handle_async_request` for a prepared request head: the same address checks and
        pinning, on the raw transport; returns the connection with the response head read.

        Not a coroutine itself: when the addresses are known without waiting (an allowed IP
        literal, a fresh cached resolution) it hands back the pool's own, one layer fewer.
        """
        inner = self._raw
        if inner is None:
            raise TypeError("open_raw needs an Http1Transport underneath")
        sni = host if scheme == "https" else ""
        if self._allow_private:
            return inner.open((scheme, host, port, sni), head, body, timeouts)
        literal = _allowed_literal(host)
        if literal is not None:
            return inner.open((scheme, literal, port, sni), head, body, timeouts)
        cached = self._cache.get((host, port))
        if cached is not None and cached.expires_at > self._clock():
            addresses = tuple(cached.addresses)
            return self._open_first(
                inner, addresses, (scheme, host, port, sni), head, body, timeouts
            )

        async def attempt(address: str) -> Http1Connection:
            return await inner.open((scheme, address, port, sni), head, body, timeouts)

        return self._first_reachable(host, port, attempt)

    async def _open_first(
        self,
        inner: Http1Transport,
        addresses: tuple[str, ...],
        origin: tuple[str, str, int, str],
        head: bytes,
        body: bytes,
        timeouts: Mapping[str, float | None],
    ) -> Http1Connection:
        """:meth:`_first_reachable` over already checked addresses, without a closure per try.
        ``origin`` is the pool key with the host name where the address goes."""
        scheme, host, port, sni = origin
        last_error: httpx2.ConnectError | None = None
        for address in addresses:
            try:
                conn = await inner.open((scheme, address, port, sni), head, body, timeouts)
            except httpx2.ConnectError as exc:
                last_error = exc
                continue
            self._prefer(host, port, address)
            return conn
        assert last_error is not None
        raise last_error

    def read_all(self, conn: Http1Connection, read_timeout: float | None) -> Awaitable[bytes]:
        """The rest of a body :meth:`open_raw` started; the connection goes back to the pool."""
        inner = self._raw
        assert inner is not None  # open_raw refused to start otherwise
        return inner.read_all(conn, read_timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _pinned(self, request: httpx2.Request, host: str, address: str) -> httpx2.Request:
        if address == host.strip("[]"):
            return request
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions.setdefault("sni_hostname", host)
        return httpx2.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )

    def _prefer(self, host: str, port: int, address: str) -> None:
        cached = self._cache.get((host, port))
        if cached is not None and cached.addresses[0] != address:
            cached.addresses.remove(address)
            cached.addresses.insert(0, address)

    async def _checked_addresses(self, host: str, port: int) -> list[str]:
        allowed = _allowed_literal(host)
        if allowed is not None:
            return [allowed]
        literal = parse_ip(host)
        if literal is not None:
            self._refuse_if_blocked(host, literal)
            return [str(literal)]
        now = self._clock()
        cached = self._cache.get((host, port))
        if cached is not None and cached.expires_at > now:
            return list(cached.addresses)
        try:
            addresses = await self._resolver(host, port)
        except OSError as exc:
            raise self._unresolved(host, str(exc)) from exc
        if not addresses:
            raise self._unresolved(host, "no addresses")
        for text in addresses:
            address = parse_ip(text)
            if address is None:
                raise self._unresolved(host, f"resolver returned {text!r}, not an IP address")
            self._refuse_if_blocked(host, address)
        self._cache[(host, port)] = _Resolved(list(addresses), now + self._cache_ttl_s)
        return list(addresses)

    def _refuse_if_blocked(self, host: str, address: IPAddress) -> None:
        reason = blocked_reason(address)
        if reason is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            raise _config_error(
                f"refusing to connect to upstream {shown}: {reason}; {OPT_IN_HINT}",
                self._provider_id,
                ADDRESS_REFUSED,
            )

    def _unresolved(self, host: str, detail: str) -> PalyraError:
        where = f"provider {self._provider_id!r}: " if self._provider_id else ""
        return PalyraError.of(
            FailureClass.CONNECTION,
            f"{where}could not resolve upstream host {host!r} ({detail}); check the base_url "
            "and this machine's DNS",
            code="dns_failure",
        )


def make_upstream_client(
    *,
    allow_private: bool,
    timeout_s: float,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    provider_id: str | None = None,
    limits: UpstreamLimits = DEFAULT_UPSTREAM_LIMITS,
) -> httpx2.AsyncClient:
    """The one way Palyra builds an upstream HTTP client: pooled keep-alive HTTP/1.1 on
    :class:`Http1Transport`, guarded addresses, no redirects followed, no cookie jar, no proxy
    or netrc taken from the environment."""
    inner = Http1Transport(max_connections=max_connections, max_body_bytes=limits.max_body_bytes)
    return UpstreamClient(
        transport=GuardedTransport(inner, allow_private, provider_id=provider_id),
        timeout=httpx2.Timeout(timeout_s),
        limits=limits,
    )


__all__ = [
    "ADDRESS_REFUSED",
    "OPT_IN_HINT",
    "GuardedTransport",
    "IPAddress",
    "Resolver",
    "blocked_reason",
    "check_base_url",
    "is_loopback",
    "make_upstream_client",
    "system_resolver",
]
