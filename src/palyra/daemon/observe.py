"""Request ids, Palyra response headers, one access log line and metrics per request.

Handlers talk to this middleware through ``request.state`` (all optional):

- ``attempt_trail``: a string, or an object with ``header_value()`` (or ``header()``), sent as
  ``x-palyra-attempts``; when it also has ``attempts`` (items with ``provider_id``,
  ``upstream_model``, ``outcome``) and ``failovers``, those are counted in ``/metrics``.
- ``upstream_timer``: an :class:`UpstreamTimer` this middleware puts there; handlers wrap
  provider calls in ``timer.waiting()`` or ``timer.stream(events)`` so ``x-palyra-overhead-ms``
  (time in Palyra minus time waiting for the upstream) can be sent. Unused, the header is omitted.
- ``usage``: an object with ``input_tokens`` and ``output_tokens``, counted per model.
- ``stream_interrupted``: set truthy when an upstream stream broke off mid-way.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from fastapi import Request
from fastapi.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palyra.daemon.logging_setup import ACCESS_LOGGER
from palyra.daemon.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from palyra.daemon.state import AppState

REQUEST_ID_HEADER = "x-palyra-request-id"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
T = TypeVar("T")

access_log = logging.getLogger(ACCESS_LOGGER)


class UpstreamTimer:
    """Adds up the time a request spends waiting for upstream providers."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.waited_s = 0.0
        self.used = False

    @contextmanager
    def waiting(self) -> Iterator[None]:
        self.used = True
        started = self._clock()
        try:
            yield
        finally:
            self.waited_s += self._clock() - started

    async def stream(self, events: AsyncIterator[T]) -> AsyncIterator[T]:
        """``events`` unchanged, with each wait for the next item timed."""
        try:
            while True:
                with self.waiting():
                    try:
                        item = await anext(events)
                    except StopAsyncIteration:
                        return
                yield item
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()


def upstream_timer(request: Request) -> UpstreamTimer:
    """The request's timer (a detached one when the middleware is not installed)."""
    timer = getattr(request.state, "upstream_timer", None)
    return timer if isinstance(timer, UpstreamTimer) else UpstreamTimer()


async def metrics_endpoint(request: Request) -> Response:
    state = cast("AppState", request.app.state.palyra)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _trail_header(trail: object) -> str | None:
    if trail is None:
        return None
    if isinstance(trail, str):
        return trail or None
    for name in ("header_value", "header"):
        method = getattr(trail, name, None)
        if callable(method):
            value = method()
            return str(value) if value else None
    return None


def _header(name: str, value: str) -> tuple[bytes, bytes]:
    return name.encode(), value.encode("ascii", "replace")


class ObservabilityMiddleware:
    """Outermost ASGI wrapper; adds headers at response start, never touches body bytes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: AppState,
        routes: Sequence[BaseRoute],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.state = state
        self.routes = routes
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        request_id = _request_id(scope)
        timer = UpstreamTimer(self.clock)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["upstream_timer"] = timer
        seen: dict[str, Any] = {"status": None, "model": None, "streamed": False, "done": False}

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers", []))
                for name, value in headers:
                    if name.lower() == b"x-palyra-model":
                        seen["model"] = value.decode("latin-1")
                headers.append(_header(REQUEST_ID_HEADER, request_id))
                attempts = _trail_header(state.get("attempt_trail"))
                if attempts:
                    headers.append(_header("x-palyra-attempts", attempts))
                if timer.used:
                    overhead = max(0.0, self.clock() - started - timer.waited_s)
                    headers.append(_header("x-palyra-overhead-ms", str(round(overhead * 1000))))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                if message.get("more_body", False):
                    seen["streamed"] = True
                else:
                    seen["done"] = True
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_observed)
        except BaseException:
            failed = True
            raise
        finally:
            self._finish(scope, state, seen, started, timer, failed=failed)

    def _finish(
        self,
        scope: Scope,
        state: dict[str, Any],
        seen: dict[str, Any],
        started: float,
        timer: UpstreamTimer,
        *,
        failed: bool,
    ) -> None:
        duration = self.clock() - started
        status = seen["status"] if seen["status"] is not None else 500
        model = seen["model"] or "none"
        route = _route_label(scope, self.routes)
        metrics = self.state.metrics
        labels = (route, model, str(status))
        metrics.requests.inc(labels)
        metrics.latency.observe(labels, duration)
        cause = None
        if state.get("stream_interrupted"):
            cause = "upstream"
        elif seen["streamed"] and not seen["done"]:
            cause = "internal" if failed else "client"
        if cause is not None:
            metrics.stream_interruptions.inc((route, model, cause))
        trail = state.get("attempt_trail")
        for attempt in getattr(trail, "attempts", ()) or ():
            metrics.upstream_attempts.inc(
                (
                    str(getattr(attempt, "provider_id", "")),
                    str(getattr(attempt, "upstream_model", "")),
                    str(getattr(attempt, "outcome", "")),
                )
            )
        failovers = getattr(trail, "failovers", 0)
        if isinstance(failovers, int) and failovers > 0:
            metrics.failovers.inc((model,), failovers)
        usage = state.get("usage")
        if usage is not None:
            metrics.add_tokens(
                model,
                int(getattr(usage, "input_tokens", 0) or 0),
                int(getattr(usage, "output_tokens", 0) or 0),
            )
        fields: dict[str, Any] = {
            "request_id": state["request_id"],
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration * 1000, 1),
            "model": seen["model"],
        }
        if timer.used:
            fields["upstream_ms"] = round(timer.waited_s * 1000, 1)
        attempts = _trail_header(trail)
        if attempts:
            fields["attempts"] = attempts
        if cause is not None:
            fields["interrupted"] = cause
        access_log.info(
            "%s %s %s %.1fms model=%s id=%s",
            fields["method"],
            fields["path"],
            status,
            fields["duration_ms"],
            seen["model"] or "-",
            fields["request_id"],
            extra={"access": fields},
        )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _INCOMING_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


def _route_label(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The route's path template (bounded label values), matched here when the app did not run."""
    route = scope.get("route")
    if route is None:
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    path: object = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
