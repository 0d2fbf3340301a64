"""Where a daemon request meets the router, for every surface alike.

Handlers parse and render; this module checks what must be refused before any upstream call,
routes, and tells the observability middleware (through ``request.state``) which attempts were
made, how long the upstream took, the usage and whether a stream broke off.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request

from palyra.config.schema import ModelConfig
from palyra.daemon.observe.exchange import hooks, timer_in, upstream_timer
from palyra.daemon.observe.failures import log_unexpected
from palyra.daemon.state import AppState
from palyra.model import (
    Capability,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorEnvelope,
    ErrorEvent,
    FailureClass,
    MessageStart,
    PalyraError,
    StreamEvent,
    TokenCount,
    TranscriptionRequest,
    TranscriptionResponse,
    UsageEvent,
)
from palyra.model.context import RequestContext
from palyra.providers.tokens import refuse_if_too_long
from palyra.routing.registry import required_capabilities
from palyra.routing.route_decision import RouteDecision
from palyra.routing.router import RoutedResponse, RoutingError
from palyra.routing.stream import with_model
from palyra.routing.trail import Attempt, AttemptTrail

log = logging.getLogger("palyra.daemon")

T = TypeVar("T")


def resolve(request: Request, state: AppState, name: str, capability: Capability) -> ModelConfig:
    """The configured model a client named (see ``AppState.resolve``); the name is noted for the
    access log first, so a request that fails (an unknown model, say) still logs what it asked."""
    hooks(request)["requested_model"] = name
    return state.resolve(name, capability)


def check_window(
    state: AppState, request: ChatRequest, output_field: str = "max_output_tokens"
) -> None:
    """Refuse a request no candidate's context window can hold, before any upstream call;
    ``output_field`` is what the client called its output limit, named in the error.

    Checked against the largest window among the routing candidates, so a request too long for
    the first model still fails over to a larger one; skipped when any candidate's window is
    unknown.
    """
    try:
        targets = state.router.registry.plan(request.model, required_capabilities(request)).targets
    except PalyraError:
        return  # the router reports unroutable requests with their trail
    windows = [t.context_window for t in targets]
    if not windows or any(w is None for w in windows):
        return
    widest = max(targets, key=lambda t: t.context_window or 0)
    refuse_if_too_long(
        request, widest.upstream_model, widest.context_window or 1, output_field=output_field
    )


async def _routed(
    request: Request, call: Awaitable[RoutedResponse[T]]
) -> tuple[T, Attempt, dict[str, Any]]:
    """The response, the attempt that produced it, and the request's hooks (``request.state``),
    where the trail went."""
    state = hooks(request)
    try:
        with timer_in(state).waiting():
            routed = await call
    except RoutingError as exc:
        state["attempt_trail"] = exc.trail
        raise
    trail = routed.trail
    state["attempt_trail"] = trail
    return routed.response, trail.attempts[-1], state


async def admit(request: Request, state: AppState, model: str) -> None:
    """Check the caller's limits (token, bound agent, provider) before routing; raises the
    limit's error. A caller with no limits passes with two attribute reads."""
    state_hooks = hooks(request)
    principal = state_hooks.get("principal")
    metering = state.usage.metering
    token_limits = None if principal is None else principal.limits
    if token_limits is None and not metering.config_limited:
        return
    try:
        admission = await metering.admit(
            token_id=None if principal is None else principal.token_id,
            token_limits=token_limits,
            agent_id=None if principal is None else principal.agent_id,
            model=model,
        )
    except PalyraError as exc:
        state_hooks["refused"] = exc.envelope.code or exc.failure_class.value
        raise
    if admission is not None:
        state_hooks["admission"] = admission
        if admission.warnings:
            state_hooks["budget_warning"] = "; ".join(admission.warnings)


def request_context(request: Request) -> RequestContext | None:
    """The caller's context, prebuilt with its token (see ``security.policy.Principal``)."""
    principal = request.scope.get("state", {}).get("principal")
    return None if principal is None else principal.context


async def chat(request: Request, state: AppState, chat: ChatRequest) -> tuple[ChatResponse, str]:
    """A whole answer and the configured model that gave it. The body names the upstream model,
    as the provider's own API would."""
    await admit(request, state, chat.model)
    routed = state.router.chat(chat, context=request_context(request))
    response, served, state_hooks = await _routed(request, routed)
    state_hooks["usage"] = response.usage
    return with_model(response, served.upstream_model), served.model_id


async def embed(
    request: Request, state: AppState, body: EmbeddingRequest
) -> tuple[EmbeddingResponse, str]:
    await admit(request, state, body.model)
    routed = state.router.embed(body, context=request_context(request))
    response, served, state_hooks = await _routed(request, routed)
    state_hooks["usage"] = response.usage
    return with_model(response, served.upstream_model), served.model_id


async def transcribe(
    request: Request, state: AppState, body: TranscriptionRequest
) -> tuple[TranscriptionResponse, str]:
    await admit(request, state, body.model)
    routed = state.router.transcribe(body, context=request_context(request))
    response, served, _ = await _routed(request, routed)
    return response, served.model_id


async def count_tokens(
    state: AppState,
    model: ModelConfig,
    chat: ChatRequest,
    context: RequestContext | None = None,
) -> TokenCount:
    """Counted by the model's own provider (not routed: a count never fails over)."""
    provider = state.runtime.providers[model.provider]
    pcfg = state.runtime.provider_config(model.provider)
    creds = await state.runtime.credentials.credentials_for(pcfg, context=context)
    upstream = chat.model_copy(update={"model": model.upstream_model})
    return await provider.count_tokens(upstream, credential=creds[0] if creds else None)


@dataclass
class StreamTrail:
    """The trail of a stream that has started: the answering attempt is only recorded when the
    stream ends, so the response header (sent at the start) names it as ``ok`` already."""

    trail: AttemptTrail
    answering: str

    @property
    def attempts(self) -> list[Attempt]:
        return self.trail.attempts

    @property
    def failovers(self) -> int:
        return self.trail.failovers

    @property
    def route(self) -> RouteDecision | None:
        return self.trail.route

    def header_value(self) -> str:
        settled = self.trail.header()
        if self.trail.finished_at is not None:
            return settled
        return f"{settled},{self.answering}" if settled else self.answering


@dataclass
class OpenedStream:
    """A routed stream whose first event has arrived (the failover boundary is behind it)."""

    first: StreamEvent
    events: AsyncIterator[StreamEvent]
    model_id: str


async def open_stream(request: Request, state: AppState, chat: ChatRequest) -> OpenedStream:
    """Route a stream up to its first event; a ``RoutingError`` here is a plain error response."""
    await admit(request, state, chat.model)
    routed = state.router.stream_chat(chat, context=request_context(request))
    request.state.attempt_trail = routed.trail
    events = upstream_timer(request).stream(aiter(routed))
    try:
        first = await anext(events)
    except StopAsyncIteration:
        raise PalyraError.of(
            FailureClass.MALFORMED_RESPONSE,
            f'model "{chat.model}" ended the stream before sending anything',
            model=chat.model,
        ) from None
    model_id = first.model if isinstance(first, MessageStart) else chat.model
    target = state.router.registry.resolve(model_id)
    if isinstance(first, MessageStart):
        first = with_model(first, target.upstream_model)
    answering = f"{target.provider}/{target.upstream_model}:ok"
    request.state.attempt_trail = StreamTrail(routed.trail, answering)
    return OpenedStream(first, events, target.id)


def upstream_headers(first: StreamEvent) -> dict[str, str]:
    """The upstream's answer headers a client reads, from a stream's first event."""
    return first.headers if isinstance(first, MessageStart) else {}


async def sse_body(
    request: Request,
    opened: OpenedStream,
    encode: Callable[[StreamEvent], bytes],
    finish: Callable[[], bytes],
    error: Callable[[ErrorEnvelope], bytes],
) -> AsyncIterator[bytes]:
    """Encode events as they arrive; a failure mid-way becomes the surface's error event (and no
    normal end), and is counted as an upstream stream interruption."""
    events = opened.events
    try:
        event = opened.first
        while True:
            if isinstance(event, UsageEvent):
                request.state.usage = event.usage
            frame = encode(event)
            if frame:
                yield frame
            if isinstance(event, ErrorEvent):
                request.state.stream_interrupted = True
                return
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
        yield finish()
    except PalyraError as exc:
        request.state.stream_interrupted = True
        yield error(exc.envelope)
    except Exception as exc:
        what = f"{request.method} {request.url.path}, mid-stream"
        log_unexpected(log, exc, what, hooks(request).get("request_id"))
        yield error(ErrorEnvelope.of(FailureClass.INTERNAL, "the stream failed inside Palyra"))
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
