"""The daemon's front door: a plain ASGI chain in front of FastAPI, and the hot model routes.

FastAPI's own stack (its error, telemetry and body-limit middleware, exception middleware,
routing, ``request_response``, dependency solving) costs tens of microseconds per request, a large
share of what a proxied model call may cost in total. So :class:`PalyraApp` answers HTTP
requests through a chain built once by ``create_app``: observability, CORS when configured, the
guard, then :class:`HotRoutes`. A request whose exact ``(method, path)`` is a model route runs its
handler right there; everything else (console, ``/metrics``, ``/healthz``, unknown paths, a
wrong method on a model path) falls through to FastAPI, which keeps serving the OpenAPI document,
lifespan, and every other route exactly as before. The model routes stay registered with
FastAPI too, so they are documented and reachable in-process through any ASGI client.

Errors on a hot route are answered by the app's own exception handlers, looked up the way
Starlette looks them up (the exception's class, then its bases), so a ``PalyraError``, an
``HTTPException`` (the 413 the guard raises while a chunked body arrives) or anything unexpected
renders exactly as it would through FastAPI.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MethodType
from typing import Any, cast

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class PalyraApp(FastAPI):
    """FastAPI with a front chain: HTTP requests go through ``front`` (see :meth:`install_front`),
    lifespan and other scope types straight to FastAPI."""

    front: ASGIApp | None = None

    def install_front(self, build: Callable[[ASGIApp], ASGIApp]) -> None:
        """Build the front chain once, around FastAPI's own ``__call__`` as its innermost app."""
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


class HotRoutes:
    """Runs the handler of an exact ``(method, path)`` hit; anything else goes on to ``app``.

    ``routes`` are FastAPI routes already registered on the app: their endpoints are called with a
    plain ``Request``, and ``scope["route"]`` is set to them as FastAPI's router would (the
    metrics label). ``handlers`` is the app's exception handler map, read when an error occurs.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Iterable[APIRoute],
        handlers: Mapping[Any, Callable[..., Any]],
    ) -> None:
        self.app = app
        self.handlers = handlers
        self.routes: dict[tuple[str, str], tuple[APIRoute, Endpoint]] = {}
        for route in routes:
            for method in route.methods or ():
                self.routes[(method, route.path)] = (route, route.endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit = self.routes.get((scope["method"], scope["path"]))
        if hit is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        route, endpoint = hit
        scope["route"] = route
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await handle_exception(self.handlers, request, exc)
        # Once the response has started nothing else can be sent: an error from here on reaches
        # the server, which closes the connection (as it does behind FastAPI).
        await response(scope, receive, send)


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
