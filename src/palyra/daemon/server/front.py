"""The daemon's front door: the model routes' hot path, then a plain ASGI chain before FastAPI.

FastAPI's own stack (its error, telemetry and body-limit middleware, exception middleware,
routing, ``request_response``, dependency solving) and even a chain of small ASGI middlewares
cost tens of microseconds per request, a large share of what a proxied model call may cost in
total. So :class:`PalyraApp` sends HTTP requests to a front built once by ``create_app``:

- :class:`HotPath` answers an exact ``(method, path)`` hit on a model route in one coroutine:
  it starts observing the request, applies the guard (token, then body size), reads the body,
  runs the route's handler, sends the response and finishes observing (metrics, access line);
  the same steps, in the same order, as the chain below, without the layers in between.
- everything else (console, ``/metrics``, ``/healthz``, unknown paths, a wrong method on a model
  path, and any request with an ``Origin`` header when CORS is configured) goes through the
  chain: observability, CORS when configured, the guard, then FastAPI, which keeps serving the
  OpenAPI document, lifespan and every other route. The model routes stay registered with
  FastAPI too, so they are documented and reachable in-process through any ASGI client.

Errors on a hot route are answered by the app's own exception handlers, looked up the way
Starlette looks them up (the exception's class, then its bases), so a ``PalyraError``, an
``HTTPException`` (the 413 for a chunked body over the limit) or anything unexpected renders
exactly as it would through FastAPI.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MethodType
from typing import TYPE_CHECKING, Any, cast

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from palyra.daemon.security.auth_guard import GuardMiddleware, too_large_message, wanted_headers

if TYPE_CHECKING:
    from palyra.daemon.observe.exchange import Exchange, ObservabilityMiddleware
    from palyra.daemon.state import AppState

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class PalyraApp(FastAPI):
    """FastAPI with a front: HTTP requests go through ``front`` (see :meth:`install_front`),
    lifespan and other scope types straight to FastAPI."""

    front: ASGIApp | None = None
    palyra_state: AppState | None = None  # set by ``create_app``; handlers read it per request

    def install_front(self, build: Callable[[ASGIApp], ASGIApp]) -> None:
        """Build the front once, around FastAPI's own ``__call__`` as its innermost app."""
        self.front = build(MethodType(FastAPI.__call__, self))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None and scope["type"] == "http":
            scope["app"] = self
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def handle_exception(
    handlers: Mapping[Any, Callable[..., Any]], request: Request, exc: Exception
) -> Response:
    """The response the app's handler for ``exc`` gives (by class, then bases, as Starlette);
    ``exc`` itself is re-raised when no handler covers it."""
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
            return cast(Response, response)
    raise exc


class BufferedRequest(Request):
    """A request whose body the hot path has already read (and held to the size limit)."""

    def __init__(self, scope: Scope, receive: Receive, body: bytes) -> None:
        super().__init__(scope, receive)
        self._body = body


async def receive_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; past ``limit`` bytes a 413 ``HTTPException`` (as the guard's
    counting ``receive`` raises on the chain), a vanished client a ``ClientDisconnect``."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                raise HTTPException(413, detail=too_large_message(limit))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


class HotPath:
    """Runs an exact ``(method, path)`` hit on ``routes`` itself; anything else goes to ``app``.

    ``routes`` are FastAPI routes already registered on the app: their endpoints are called with
    a plain ``Request`` and ``scope["route"]`` is set to them as FastAPI's router would (the
    metrics label). ``observer`` and ``guard`` are the chain's own middlewares, whose steps this
    runs in the chain's order; ``handlers`` is the app's exception handler map. With ``cors``,
    requests that carry an ``Origin`` header take the chain, where the CORS middleware is.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Iterable[APIRoute],
        handlers: Mapping[Any, Callable[..., Any]],
        observer: ObservabilityMiddleware,
        guard: GuardMiddleware,
        cors: bool = False,
    ) -> None:
        self.app = app
        self.handlers = handlers
        self.observer = observer
        self.guard = guard
        self.cors = cors
        self.routes: dict[tuple[str, str], tuple[APIRoute, Endpoint]] = {}
        for route in routes:
            for method in route.methods or ():
                self.routes[(method, route.path)] = (route, route.endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit = self.routes.get((scope["method"], scope["path"]))
        if hit is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        headers = wanted_headers(scope)
        if self.cors and "origin" in headers:
            await self.app(scope, receive, send)
            return
        route, endpoint = hit
        scope["route"] = route

        async def answer(exchange: Exchange) -> None:
            response = await self.guard.refusal(scope, headers)
            if response is None:
                response = await self._handle(scope, receive, endpoint)
            # Once the response has started nothing else can be sent: an error from here on
            # reaches the server, which closes the connection (as it does behind FastAPI).
            await exchange.respond(scope, receive, response)

        await self.observer.observe(scope, receive, send, headers.get("x-request-id"), answer)

    async def _handle(self, scope: Scope, receive: Receive, endpoint: Endpoint) -> Response:
        try:
            body = await receive_body(receive, self.guard.state.config.daemon.max_body_bytes)
            request: Request = BufferedRequest(scope, receive, body)
            return await endpoint(request)
        except Exception as exc:
            return await handle_exception(self.handlers, Request(scope, receive), exc)


def first_routes(app: FastAPI, paths: Iterable[str]) -> list[APIRoute]:
    """The app's routes for ``paths``, each checked to be what FastAPI's router would pick first
    for every method it takes (so the hot path can never answer for another route)."""
    found = []
    for path in paths:
        candidates = [r for r in app.router.routes if isinstance(r, APIRoute) and r.path == path]
        if len(candidates) != 1:
            raise RuntimeError(f"{path}: expected one registered route, found {len(candidates)}")
        route = candidates[0]
        for method in route.methods or ():
            scope: Scope = {
                "type": "http",
                "method": method,
                "path": path,
                "root_path": "",
                "headers": [],
            }
            first = next(r for r in app.router.routes if r.matches(scope)[0] is Match.FULL)
            if first is not route:
                raise RuntimeError(f"{method} {path} is shadowed by {first!r}")
        found.append(route)
    return found
