"""The httpx2 client Palyra talks to upstreams with, minus what an API proxy must not do.

``httpx2.AsyncClient.send`` runs auth flows, follows redirects, keeps a cookie jar and wraps
every body in a timing stream. Palyra configures no auth on the client (credentials are
per-request headers), never follows redirects, and must not keep cookies: a jar shared by all
requests would carry cookies set for one credential into requests made with another. Dropping
those layers (and building requests without re-parsing the same base URL each time) is also a
measurable share of the daemon's CPU per proxied request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2
from httpx2._client import USE_CLIENT_DEFAULT, UseClientDefault

_URL_CACHE_SIZE = 256


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
