"""Request ids, Palyra response headers, one access log line and metrics per request.

Handlers talk to this middleware through ``request.state`` (all optional):

- ``attempt_trail``: a string, or an object with ``header_value()`` (or ``header()``), sent as
  ``x-palyra-attempts``; when it also has ``attempts`` (items with ``provider_id``,
  ``upstream_model``, ``outcome``) and ``failovers``, those are counted in ``/metrics``; when
  it has a ``route`` (a routing group's ``RouteDecision``), that is sent as ``x-palyra-route``.
- ``upstream_timer``: an :class:`UpstreamTimer` this middleware puts there; handlers wrap
  provider calls in ``timer.waiting()`` or ``timer.stream(events)`` so ``x-palyra-overhead-ms``
  (time in Palyra minus time waiting for the upstream) can be sent. Unused, the header is omitted.
- ``usage``: an object with ``input_tokens`` and ``output_tokens``, counted per model.
- ``stream_interrupted``: set truthy when an upstream stream broke off mid-way.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from fastapi import Request
from fastapi.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palyra.daemon.observe.failures import log_unexpected
from palyra.daemon.observe.logging_setup import ACCESS_LOGGER, log_access
from palyra.daemon.observe.metrics import CONTENT_TYPE, Metrics
from palyra.daemon.server.http_protocol import COALESCE
from palyra.daemon.server.json_response import JSONBytes
from palyra.model import Usage
from palyra.routing.trail import AttemptTrail
from palyra.usage.facts import UsageFact
from palyra.usage.limiter import Admission

if TYPE_CHECKING:
    from palyra.daemon.state import AppState

REQUEST_ID_HEADER = "x-palyra-request-id"
REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode()
ATTEMPTS_HEADER_BYTES = b"x-palyra-attempts"
ROUTE_HEADER_BYTES = b"x-palyra-route"
OVERHEAD_HEADER_BYTES = b"x-palyra-overhead-ms"
BUDGET_WARNING_HEADER_BYTES = b"x-palyra-budget-warning"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
T = TypeVar("T")
# uuid.uuid4(): version nibble 4 (bits 76-79) and RFC 4122 variant 0b10 (bits 62-63).
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (4 << 76) | (0x8000 << 48)

access_log = logging.getLogger(ACCESS_LOGGER)
failure_log = logging.getLogger("palyra.daemon")
# The hook in which the app's handler for unexpected exceptions notes the one it logged.
LOGGED_FAILURE = "logged_failure"
# Responses whose ``__call__`` is Starlette's plain one: start, then the whole body.
_DIRECT = frozenset({Response, JSONBytes})


class UpstreamTimer:
    """Adds up the time a request spends waiting for upstream providers."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.waited_s = 0.0
        self.used = False

    def waiting(self) -> AbstractContextManager[None]:
        """Times the ``with`` block as waiting (also when it raises)."""
        return _Waiting(self)

    async def stream(self, events: AsyncIterator[T]) -> AsyncIterator[T]:
        """``events`` unchanged, with each wait for the next item timed."""
        clock = self._clock
        try:
            while True:
                self.used = True
                started = clock()
                try:
                    item = await anext(events)
                except StopAsyncIteration:
                    return
                finally:
                    self.waited_s += clock() - started
                yield item
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()


class _Waiting:
    """``UpstreamTimer.waiting()`` as a plain context manager (a generator-based one costs about
    a microsecond per use, paid per upstream call and per streamed event)."""

    __slots__ = ("started", "timer")

    def __init__(self, timer: UpstreamTimer) -> None:
        self.timer = timer
        self.started = 0.0

    def __enter__(self) -> None:
        timer = self.timer
        timer.used = True
        self.started = timer._clock()

    def __exit__(self, *exc_info: object) -> None:
        timer = self.timer
        timer.waited_s += timer._clock() - self.started


def hooks(request: Request) -> dict[str, Any]:
    """The dict behind ``request.state``, read and written directly: Starlette's ``State``
    wraps this same dict, and costs a failed attribute lookup per read on the hot path."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    return state


def upstream_timer(request: Request) -> UpstreamTimer:
    """The request's timer (a detached one when the middleware is not installed)."""
    return timer_in(hooks(request))


def timer_in(state: dict[str, Any]) -> UpstreamTimer:
    """The timer in a request's hooks (a detached one when the middleware put none there)."""
    timer = state.get("upstream_timer")
    return timer if isinstance(timer, UpstreamTimer) else UpstreamTimer()


async def metrics_endpoint(request: Request) -> Response:
    state = cast("AppState", request.app.state.palyra)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _trail_header(trail: object) -> str | None:
    if trail is None:
        return None
    if type(trail) is AttemptTrail:  # the router's own trail: no duck-typed lookups
        return trail.header() or None
    if isinstance(trail, str):
        return trail or None
    for name in ("header_value", "header"):
        method = getattr(trail, name, None)
        if callable(method):
            value = method()
            return str(value) if value else None
    return None


class Exchange:
    """One request as the middleware sees it; ``send`` adds Palyra's headers at response start
    and notes what went out (status, model, whether the body was streamed and finished)."""

    __slots__ = (
        "attempts",
        "clock",
        "done",
        "downstream",
        "hooks",
        "model",
        "request_id",
        "started",
        "status",
        "streamed",
        "timer",
    )

    def __init__(
        self,
        downstream: Send,
        request_id: str,
        hooks: dict[str, Any],
        timer: UpstreamTimer,
        clock: Callable[[], float],
        started: float,
    ) -> None:
        self.downstream = downstream
        self.request_id = request_id
        self.hooks = hooks
        self.timer = timer
        self.clock = clock
        self.started = started
        self.status: int | None = None
        self.model: str | None = None
        self.streamed = False
        self.done = False
        self.attempts: str | None = None  # the x-palyra-attempts value sent, if any

    def palyra_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``headers`` plus Palyra's own, at response start; notes the model the handler named."""
        out = list(headers)
        for name, value in out:
            if name.lower() == b"x-palyra-model":
                self.model = value.decode("latin-1")
        out.append((REQUEST_ID_HEADER_BYTES, self.request_id.encode("ascii", "replace")))
        trail = self.hooks.get("attempt_trail")
        self.attempts = attempts = _trail_header(trail)
        if attempts:
            out.append((ATTEMPTS_HEADER_BYTES, attempts.encode("ascii", "replace")))
            # A routing group's decision; a plain model's trail has none (one attribute read).
            route = getattr(trail, "route", None)
            if route is not None:
                out.append((ROUTE_HEADER_BYTES, route.header().encode("ascii", "replace")))
        warning = self.hooks.get("budget_warning")
        if warning is not None:
            out.append((BUDGET_WARNING_HEADER_BYTES, warning.encode("ascii", "replace")))
        timer = self.timer
        if timer.used:
            overhead = max(0.0, self.clock() - self.started - timer.waited_s)
            out.append((OVERHEAD_HEADER_BYTES, b"%d" % round(overhead * 1000)))
        return out

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if message.get("more_body", False):
                self.streamed = True
            else:
                self.done = True
        elif kind == "http.response.start":
            self.status = message["status"]
            message = {**message, "headers": self.palyra_headers(message.get("headers", ()))}
        await self.downstream(message)

    async def respond(self, scope: Scope, receive: Receive, response: Response) -> None:
        """Send ``response``; a plain one as its two messages directly, without its ``__call__``
        and this exchange's ``send`` in between (the same messages, a few microseconds less)."""
        if type(response) not in _DIRECT or response.background is not None:
            await response(scope, receive, self.send)
            return
        self.status = status = response.status_code
        headers = self.palyra_headers(response.raw_headers)
        extensions = scope.get("extensions")
        offer = extensions.get(COALESCE) if extensions else None
        wire = offer.get("transport") if offer else None
        if wire is not None:
            wire.hold()  # head and body leave in one write (see palyra.daemon.server.http_protocol)
        try:
            await self.downstream(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            self.done = True
            await self.downstream({"type": "http.response.body", "body": response.body})
        finally:
            if wire is not None:
                wire.release()


class ObservabilityMiddleware:
    """Outermost ASGI wrapper; adds headers at response start, never touches body bytes.

    With ``on_error`` (the app's handler for unexpected exceptions), an exception that reaches
    this middleware before any response started is answered with that handler's response (which
    logs it), counted and logged like any other request. One that arrives after the response
    started (Starlette re-raises what its handler answered; a body may fail mid-way) stops here
    too, logged once without its text (see :mod:`palyra.daemon.observe.failures`): the server
    would log its full traceback, which can quote the request. A cut body then ends the
    connection, as the server does. Without ``on_error`` the exception goes on to the server.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: AppState,
        routes: Sequence[BaseRoute],
        clock: Callable[[], float] = time.perf_counter,
        on_error: Callable[[Request, Exception], Awaitable[Response]] | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.routes = routes
        self.clock = clock
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.observe(
            scope, receive, send, _incoming_id(scope), lambda ex: self.app(scope, receive, ex.send)
        )

    async def observe(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        incoming_id: str | None,
        answer: Callable[[Exchange], Awaitable[None]],
    ) -> None:
        """Observe one request that ``answer`` answers through the exchange it is given: an
        exception that escapes it is recovered (see :meth:`recover`), and the request is counted
        and logged whatever happens. The chain and the hot path both run requests through here."""
        exchange = self.begin(scope, send, incoming_id)
        failed = False
        try:
            await answer(exchange)
        except Exception as exc:
            failed = True
            failed = not await self.recover(scope, receive, exchange, exc)
        except BaseException:
            failed = True
            raise
        finally:
            self.finish(scope, exchange, failed=failed)
            admission = exchange.hooks.get("admission")
            if admission is not None:
                await self.settle(exchange.hooks, admission)

    async def settle(self, state: dict[str, Any], admission: Admission) -> None:
        """Charge a limited request's usage to its limits (after its response went out)."""
        usage = state.get("usage")
        try:
            await self.state.usage.metering.settle(
                admission, usage if type(usage) is Usage else None, _routed_trail(state)
            )
        except Exception as exc:  # limits must never turn an answered request into a failure
            log_unexpected(failure_log, exc, "settling a request's limits", state.get("request_id"))

    def begin(self, scope: Scope, send: Send, incoming_id: str | None) -> Exchange:
        """Start observing one request: its id, upstream timer and the hooks handlers fill in.
        ``incoming_id`` is the caller's ``x-request-id`` header, kept when it is well formed."""
        clock = self.clock
        started = clock()
        if incoming_id is None or not _INCOMING_ID.match(incoming_id):
            request_id = new_request_id()
        else:
            request_id = incoming_id
        timer = UpstreamTimer(clock)
        hooks: dict[str, Any] = scope.setdefault("state", {})
        hooks["request_id"] = request_id
        hooks["upstream_timer"] = timer
        return Exchange(send, request_id, hooks, timer, clock, started)

    async def recover(
        self, scope: Scope, receive: Receive, exchange: Exchange, exc: Exception
    ) -> bool:
        """Answer an exception that escaped the app with ``on_error``'s response while nothing
        was sent yet; after that, log it (once) and say whether the response went out whole.
        Without ``on_error`` it goes on to the server."""
        if self.on_error is None:
            raise exc
        if exchange.status is None:
            response = await self.on_error(Request(scope, receive), exc)
            await exchange.respond(scope, receive, response)
            return True
        if exchange.hooks.get(LOGGED_FAILURE) is not exc:
            what = f"{scope['method']} {scope['path']}"
            log_unexpected(failure_log, exc, what, exchange.request_id)
        return exchange.done

    def finish(self, scope: Scope, seen: Exchange, *, failed: bool) -> None:
        """Count the request in the metrics and write its access line."""
        state = seen.hooks
        timer = seen.timer
        duration = self.clock() - seen.started
        status = seen.status if seen.status is not None else 500
        model = seen.model or "none"
        route = _route_label(scope, self.routes)
        metrics = self.state.metrics
        labels = (route, model, str(status))
        metrics.requests.inc(labels)
        metrics.latency.observe(labels, duration)
        cause = None
        if state.get("stream_interrupted"):
            cause = "upstream"
        elif seen.streamed and not seen.done:
            cause = "internal" if failed else "client"
        if cause is not None:
            metrics.stream_interruptions.inc((route, model, cause))
        principal = state.get("principal")
        agent = None if principal is None else principal.agent_id
        if agent is not None:
            metrics.agent_requests.inc((metrics.agent_label(agent), str(status)))
        trail = state.get("attempt_trail")
        if type(trail) is AttemptTrail:
            for done in trail.attempts:
                metrics.upstream_attempts.inc((done.provider_id, done.upstream_model, done.outcome))
            if len(trail.attempts) > 1 and trail.failovers:
                metrics.failovers.inc((model,), trail.failovers)
        elif trail is not None:
            _count_attempts(metrics, trail, model)
        usage = state.get("usage")
        if "requested_model" in state:
            self.record_usage(state, status, duration, cause)
        if type(usage) is Usage:
            metrics.add_tokens(model, usage.input_tokens, usage.output_tokens)
        elif usage is not None:
            metrics.add_tokens(
                model,
                int(getattr(usage, "input_tokens", 0) or 0),
                int(getattr(usage, "output_tokens", 0) or 0),
            )
        if not access_log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "request_id": state["request_id"],
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration * 1000, 1),
            "model": seen.model or _requested_model(state, trail),
        }
        if timer.used:
            fields["upstream_ms"] = round(timer.waited_s * 1000, 1)
        # A whole response's trail was final when its header was sent; a stream's goes on.
        attempts = seen.attempts if seen.status is not None and not seen.streamed else None
        if attempts is None:
            attempts = _trail_header(trail)
        if attempts:
            fields["attempts"] = attempts
        if cause is not None:
            fields["interrupted"] = cause
        if agent is not None:
            fields["agent"] = agent
        log_access(fields)

    def record_usage(
        self, state: dict[str, Any], status: int, duration: float, cause: str | None
    ) -> None:
        """Queue the ledger fact of a model request (one tuple; priced by the ledger later).
        A request that did not route (a count, a refused body) and did not fail is left out."""
        trail = _routed_trail(state)
        refused = state.get("refused")
        if trail is None and refused is None and status < 400:
            return
        usage = state.get("usage")
        if refused is not None:
            outcome = refused
        elif cause is not None:
            outcome = "stream_interrupted" if cause == "upstream" else f"cut_{cause}"
        elif trail is not None and trail.attempts and trail.attempts[-1].outcome != "ok":
            outcome = trail.attempts[-1].outcome
        elif status >= 400:
            outcome = f"http_{status}"
        else:
            outcome = "ok"
        principal = state.get("principal")
        self.state.usage.metering.record(
            UsageFact(
                self.state.clock(),
                state["request_id"],
                None if principal is None else principal.token_id,
                None if principal is None else principal.agent_id,
                None,
                state.get("requested_model"),
                trail,
                usage if type(usage) is Usage else None,
                status,
                outcome,
                duration,
            )
        )


def _routed_trail(state: dict[str, Any]) -> AttemptTrail | None:
    """The router's trail of a request (a stream's is inside its ``StreamTrail``)."""
    trail = state.get("attempt_trail")
    if type(trail) is AttemptTrail:
        return trail
    inner = getattr(trail, "trail", None)
    return inner if type(inner) is AttemptTrail else None


def _count_attempts(metrics: Metrics, trail: object, model: str) -> None:
    """Attempts and failovers from a trail-like hook object (see the module docstring)."""
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


MAX_LOGGED_MODEL_CHARS = 128


def _requested_model(state: dict[str, Any], trail: object) -> str | None:
    """The model id the client asked for, when none answered (a failed request): as the client
    sent it, cut to 128 characters, control characters escaped (it reaches text logs)."""
    name = state.get("requested_model")
    if not isinstance(name, str):
        name = getattr(trail, "requested_model", None)
        if not isinstance(name, str):
            return None
    name = name[:MAX_LOGGED_MODEL_CHARS]
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return bytes(value).decode("latin-1")
    return None


def new_request_id() -> str:
    """A random (version 4) UUID as 32 hex digits, as ``uuid.uuid4().hex`` gives, without the
    ``UUID`` object (half the cost); fresh randomness per id, so forked workers never collide."""
    return "%032x" % (int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET)


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
