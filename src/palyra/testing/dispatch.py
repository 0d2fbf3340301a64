"""The request pipeline of the fake upstream: record, delay, faults, limits, auth, then answer.

Order per request: record it; sleep ``latency_ms`` + jitter; consume the first queued fault
matching its path and model; random ``fail_rate`` failure; ``rate_limit_rpm``; API key check;
validation; the answer (possibly cut or mangled by the consumed fault).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from palyra.testing import (
    anthropic_messages,
    audio,
    embeddings,
    model_lists,
    openai_chat,
    openai_responses,
)
from palyra.testing.conversation import Conversation, Reply, ScriptedToolCall, plan_reply
from palyra.testing.faults import Fault, FaultKind, FaultQueue
from palyra.testing.http_server import HttpRequest, Responder
from palyra.testing.recording import RecordedRequest, RequestLog
from palyra.testing.settings import FakeSettings
from palyra.testing.wire_errors import (
    Dialect,
    WireError,
    context_length,
    invalid,
    invalid_key,
    rate_limited,
    server_error,
)

Sleep = Callable[[float], Awaitable[None]]

ROUTES = {
    "/v1/chat/completions": "POST",
    "/v1/responses": "POST",
    "/v1/embeddings": "POST",
    "/v1/audio/transcriptions": "POST",
    "/v1/models": "GET",
    "/v1/messages": "POST",
    "/v1/messages/count_tokens": "POST",
}
RATE_WINDOW_S = 60.0
_BROKEN_OPENAI_EVENT = b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": \n\n'
_BROKEN_ANTHROPIC_EVENT = (
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n'
)


def dialect_of(request: HttpRequest) -> Dialect:
    if request.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return Dialect.ANTHROPIC
    return Dialect.OPENAI


def _bearer(request: HttpRequest) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``6ms``, ``17.5s``, ``1m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


def _presented_key(request: HttpRequest, dialect: Dialect) -> str:
    if dialect is Dialect.OPENAI:
        return _bearer(request)
    return request.headers.get("x-api-key", "") or _bearer(request)


def _echo_message(key: str) -> str:
    return f"Incorrect API key provided: {key}. You can find your API key in your account."


def _injected_event(fault: Fault | None, dialect: Dialect, key: str) -> bytes | None:
    """The event a stream fault adds after ``after_chunks`` events, if it adds one."""
    kind = fault.kind if fault is not None else None
    if kind is FaultKind.MALFORMED_SSE:
        return _BROKEN_ANTHROPIC_EVENT if dialect is Dialect.ANTHROPIC else _BROKEN_OPENAI_EVENT
    if kind is FaultKind.ECHO_KEY:
        if dialect is Dialect.ANTHROPIC:
            error = {"type": "invalid_request_error", "message": _echo_message(key)}
            return _sse({"type": "error", "error": error}, "error")
        return _sse({"error": {"message": _echo_message(key), "type": "invalid_request_error"}})
    if kind is FaultKind.OVERSIZED and fault is not None:
        pad = b"x" * fault.size_bytes
        if dialect is Dialect.ANTHROPIC:
            return b'event: ping\ndata: {"type": "ping", "padding": "' + pad + b'"}\n\n'
        return b'data: {"id": "chatcmpl-pad", "choices": [], "padding": "' + pad + b'"}\n\n'
    return None


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _check_route(request: HttpRequest) -> None:
    method = ROUTES.get(request.path)
    if method is None:
        raise WireError(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url")
    if method != request.method:
        raise WireError(
            405, f"Method {request.method} is not allowed on {request.path}; use {method}"
        )


class FakeApp:
    """Holds the fake's mutable state; :meth:`handle` serves one HTTP request."""

    def __init__(
        self,
        settings: FakeSettings,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.faults = FaultQueue()
        self.log = RequestLog()
        self._clock = clock
        self._rng = rng
        self._sleep = sleep
        self._lock = threading.Lock()
        self._scripts: deque[list[ScriptedToolCall]] = deque()
        # Per API key, as a vendor counts rate limits per key: request times in the last minute.
        self._windows: dict[str, deque[float]] = {}
        self._ids = itertools.count(1)
        self._error_ids = itertools.count(1)
        self._cache: set[bytes] = set()

    def script(self, calls: list[ScriptedToolCall]) -> None:
        with self._lock:
            self._scripts.append(calls)

    def clear(self) -> None:
        """Forget recorded requests, queued faults, scripted calls, the rate-limit window and
        the prompt cache."""
        self.log.clear()
        self.faults.clear()
        with self._lock:
            self._scripts.clear()
            self._windows.clear()
            self._cache.clear()

    # --- pipeline ---
    async def handle(self, request: HttpRequest, out: Responder) -> None:
        dialect = dialect_of(request)
        body, parse_error, fields = self._parse(request)
        self.log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.query,
                headers=dict(request.headers),
                body=audio.recorded_fields(fields) if fields is not None else body,
                raw_body=request.body,
                received_at=self._clock(),
            )
        )
        try:
            delay = self.settings.latency_ms + self._rng.uniform(0, self.settings.jitter_ms)
            if delay > 0:
                await self._sleep(delay / 1000)
            source = fields if fields is not None else body
            model = source.get("model") if isinstance(source, dict) else None
            fault = self.faults.take(request.path, model if isinstance(model, str) else None)
            if fault is not None and await self._early_fault(fault, dialect, out):
                return
            if (
                fault is not None
                and fault.kind is FaultKind.ECHO_KEY
                and not (isinstance(source, dict) and source.get("stream") is True)
            ):
                message = _echo_message(_presented_key(request, dialect))
                raise WireError(401, message, code="invalid_api_key")
            self._admit(request, dialect)
            _check_route(request)
            if parse_error is not None:
                raise parse_error
            await self._route(request, dialect, body, fields, fault, out)
        except WireError as err:
            key = _presented_key(request, dialect)
            headers = {**self.error_headers(dialect, key), **err.headers}
            await out.send(err.status, err.body(dialect), headers=headers)

    def _parse(
        self, request: HttpRequest
    ) -> tuple[Any, WireError | None, dict[str, str | audio.UploadedFile] | None]:
        if request.method != "POST":
            return None, None, None
        if request.path == "/v1/audio/transcriptions":
            try:
                ctype = request.headers.get("content-type", "")
                return None, None, audio.parse_multipart(ctype, request.body)
            except WireError as err:
                return None, err, None
        try:
            return orjson.loads(request.body), None, None
        except orjson.JSONDecodeError:
            return None, invalid("We could not parse the JSON body of your request."), None

    async def _early_fault(self, fault: Fault, dialect: Dialect, out: Responder) -> bool:
        """Apply a fault that replaces the answer; True when the request is finished."""
        match fault.kind:
            case FaultKind.SERVER_ERROR:
                raise server_error(fault.status or 500)
            case FaultKind.RATE_LIMIT:
                raise rate_limited(fault.retry_after_s, "injected fault")
            case FaultKind.INVALID_KEY:
                raise invalid_key(dialect, present=True)
            case FaultKind.CONTEXT_LENGTH:
                window = self.settings.context_window
                raise context_length(dialect, window + 1, window)
            case FaultKind.HANG:
                await out.hang()
                return True
            case FaultKind.CONNECTION_RESET:
                out.reset()
                return True
            case FaultKind.SLOW_FIRST_BYTE:
                await self._sleep(fault.delay_ms / 1000)
        return False

    def _admit(self, request: HttpRequest, dialect: Dialect) -> None:
        settings = self.settings
        if settings.fail_rate and self._rng.random() < settings.fail_rate:
            status = settings.fail_status
            if status == 429:
                raise rate_limited(1.0, "injected fail_rate")
            if status >= 500:
                raise server_error(status)
            raise WireError(status, f"Injected failure (fail_rate={settings.fail_rate}).")
        if settings.rate_limit_rpm:
            now = self._clock()
            with self._lock:
                window = self._window(_presented_key(request, dialect), now)
                if len(window) >= settings.rate_limit_rpm:
                    wait = window[0] + RATE_WINDOW_S - now
                    raise rate_limited(wait, f"{settings.rate_limit_rpm} requests per minute")
                window.append(now)
        self._authenticate(request, dialect)

    def _window(self, key: str, now: float) -> deque[float]:
        """The key's request times in the last minute (call with the lock held)."""
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - RATE_WINDOW_S:
            window.popleft()
        return window

    def _authenticate(self, request: HttpRequest, dialect: Dialect) -> None:
        key = _presented_key(request, dialect)
        if not self.settings.accepts_key(key):
            raise invalid_key(dialect, present=bool(key))
        if dialect is Dialect.ANTHROPIC and not request.headers.get("anthropic-version"):
            raise invalid("anthropic-version: header is required")

    async def _route(
        self,
        request: HttpRequest,
        dialect: Dialect,
        body: Any,
        fields: dict[str, str | audio.UploadedFile] | None,
        fault: Fault | None,
        out: Responder,
    ) -> None:
        match request.path:
            case "/v1/chat/completions":
                key = _presented_key(request, dialect)
                injected = _injected_event(fault, dialect, key)
                await self._openai_chat(body, fault, injected, out, key)
            case "/v1/responses":
                key = _presented_key(request, dialect)
                injected = _injected_event(fault, dialect, key)
                await self._openai_responses(body, fault, injected, out, key)
            case "/v1/messages":
                key = _presented_key(request, dialect)
                injected = _injected_event(fault, dialect, key)
                await self._anthropic_messages(body, fault, injected, out, key)
            case "/v1/messages/count_tokens":
                conv, _ = anthropic_messages.parse_messages(body, count_only=True)
                await self._json(out, {"input_tokens": conv.input_tokens}, fault)
            case "/v1/embeddings":
                answer = embeddings.embeddings(body, self.settings.default_embedding_dimensions)
                await self._json(out, answer, fault)
            case "/v1/audio/transcriptions":
                assert fields is not None
                result, ctype = audio.transcribe(fields)
                if isinstance(result, bytes):
                    await out.send(200, result, ctype)
                else:
                    await self._json(out, result, fault)
            case _:
                listing = (
                    model_lists.anthropic_models(self.settings.anthropic_models)
                    if dialect is Dialect.ANTHROPIC
                    else model_lists.openai_models(self.settings.openai_models)
                )
                await self._json(out, listing, fault)

    def _reply_for(self, conv: Conversation, dialect: Dialect, n: int) -> Reply:
        if conv.input_tokens > self.settings.context_window:
            raise context_length(dialect, conv.input_tokens, self.settings.context_window)
        call_prefix = "toolu" if dialect is Dialect.ANTHROPIC else "call"
        scripted = None
        if conv.wants_tools:
            with self._lock:
                scripted = self._scripts.popleft() if self._scripts else None
        return plan_reply(
            conv,
            scripted=scripted,
            call_id=lambda i: f"{call_prefix}_fake{n:06x}{i:02d}",
            cached_tokens=self.settings.cached_tokens,
        )

    async def _openai_chat(
        self, body: Any, fault: Fault | None, injected: bytes | None, out: Responder, key: str
    ) -> None:
        conv, options = openai_chat.parse_chat(body)
        conv.thinking = self.settings.reasoning_content
        n = next(self._ids)
        reply = self._reply_for(conv, Dialect.OPENAI, n)
        ident, created = f"chatcmpl-fake{n:012x}", int(self._clock())
        shape: dict[str, Any] = {
            "reasoning_field": self.settings.reasoning_field,
            "extras": self.settings.answer_extras,
        }
        if not options.stream:
            answer = openai_chat.completion(
                reply, id=ident, model=conv.model, created=created, options=options, **shape
            )
            await self._json(out, answer, fault, self.limit_headers(Dialect.OPENAI, n, key))
            return
        chunks = openai_chat.chunks(
            reply,
            id=ident,
            model=conv.model,
            created=created,
            words_per_chunk=self.settings.stream_chunk_tokens,
            include_usage=options.include_usage,
            options=options,
            **shape,
        )
        events = itertools.chain((_sse(c) for c in chunks), [b"data: [DONE]\n\n"])
        await self._stream(out, events, fault, injected, self.limit_headers(Dialect.OPENAI, n, key))

    async def _openai_responses(
        self, body: Any, fault: Fault | None, injected: bytes | None, out: Responder, key: str
    ) -> None:
        conv, options = openai_responses.parse_responses(body)
        if self.settings.responses_future_item:
            options = dataclasses.replace(options, future=True)
        n = next(self._ids)
        reply = self._reply_for(conv, Dialect.OPENAI, n)
        ident, created = f"fake{n:012x}", int(self._clock())
        summary = openai_responses.reasoning_summary(conv) if options.reasoning else None
        if not options.stream:
            answer = openai_responses.response(
                reply, id=ident, model=conv.model, created=created, summary=summary, options=options
            )
            await self._json(out, answer, fault, self.limit_headers(Dialect.OPENAI, n, key))
            return
        events = openai_responses.events(
            reply,
            id=ident,
            model=conv.model,
            created=created,
            summary=summary,
            words_per_chunk=self.settings.stream_chunk_tokens,
            options=options,
        )
        frames = (_sse(e, e["type"]) for e in events)
        await self._stream(out, frames, fault, injected, self.limit_headers(Dialect.OPENAI, n, key))

    async def _anthropic_messages(
        self, body: Any, fault: Fault | None, injected: bytes | None, out: Responder, key: str
    ) -> None:
        conv, stream = anthropic_messages.parse_messages(body)
        n = next(self._ids)
        reply = self._cached(self._reply_for(conv, Dialect.ANTHROPIC, n), body)
        ident = f"msg_fake{n:012x}"
        limits = self.limit_headers(Dialect.ANTHROPIC, n, key)
        search = anthropic_messages.web_search_tool(body)
        query = conv.last_user_text
        if not stream:
            answer = anthropic_messages.message(
                reply, id=ident, model=conv.model, search=search, query=query
            )
            await self._json(out, answer, fault, limits)
            return
        events = anthropic_messages.events(
            reply,
            id=ident,
            model=conv.model,
            words_per_chunk=self.settings.stream_chunk_tokens,
            search=search,
            query=query,
        )
        await self._stream(out, (_sse(d, e) for e, d in events), fault, injected, limits)

    def _cached(self, reply: Reply, body: dict[str, Any]) -> Reply:
        """The marked prompt prefix written to the cache on first sight, read from it after."""
        prefix = anthropic_messages.cache_prefix(body)
        if prefix is None:
            return reply
        key, tokens, long_lived = prefix
        tokens = min(tokens, reply.input_tokens - reply.cached_tokens)
        with self._lock:
            seen = key in self._cache
            self._cache.add(key)
        if seen:
            return dataclasses.replace(reply, cached_tokens=reply.cached_tokens + tokens)
        return dataclasses.replace(
            reply, cache_creation_tokens=tokens, cache_creation_1h_tokens=min(long_lived, tokens)
        )

    def error_headers(self, dialect: Dialect, key: str = "") -> dict[str, str]:
        """The headers the vendor sends with an error answer too: its rate limits (for ``key``)
        and a request id (``req_fakeerr...``, numbered apart from the answers' ids)."""
        headers = self.limit_headers(dialect, 0, key)
        name = "request-id" if dialect is Dialect.ANTHROPIC else "x-request-id"
        headers[name] = f"req_fakeerr{next(self._error_ids):09x}"
        return headers

    def limit_headers(self, dialect: Dialect, n: int, key: str = "") -> dict[str, str]:
        """The rate-limit and request-id headers the vendor sends with every answer, counted
        for the API key the request carried; the reset is when that key's window is empty."""
        limit = self.settings.rate_limit_rpm or 10_000
        now = self._clock()
        with self._lock:
            window = self._window(key, now)
            remaining = max(limit - len(window), 0)
            reset_s = window[-1] + RATE_WINDOW_S - now if window else 0.0
        if dialect is Dialect.ANTHROPIC:
            at = datetime.now(UTC) + timedelta(seconds=reset_s)
            return {
                "request-id": f"req_fake{n:012x}",
                "anthropic-ratelimit-requests-limit": str(limit),
                "anthropic-ratelimit-requests-remaining": str(remaining),
                "anthropic-ratelimit-requests-reset": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "anthropic-ratelimit-tokens-limit": "1000000",
                "anthropic-ratelimit-tokens-remaining": "999000",
            }
        return {
            "x-request-id": f"req_fake{n:012x}",
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-limit-tokens": "1000000",
            "x-ratelimit-remaining-tokens": "999000",
            "x-ratelimit-reset-requests": _duration(reset_s),
        }

    async def _json(
        self,
        out: Responder,
        answer: Any,
        fault: Fault | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = orjson.dumps(answer)
        kind = fault.kind if fault is not None else None
        if kind in (FaultKind.MALFORMED_JSON, FaultKind.MALFORMED_SSE):
            await out.send(200, body[: len(body) // 2])
        elif kind is FaultKind.OVERSIZED and fault is not None and isinstance(answer, dict):
            await out.send(200, orjson.dumps({**answer, "padding": "x" * fault.size_bytes}))
        elif kind is FaultKind.STREAM_CUT:
            out.send_partial(200, body, len(body) // 2, "application/json")
        else:
            await out.send(200, body, headers=headers)

    async def _stream(
        self,
        out: Responder,
        events: Iterable[bytes],
        fault: Fault | None,
        injected: bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        kind = fault.kind if fault is not None else None
        after = fault.after_chunks if fault is not None else -1
        delay = self.settings.stream_chunk_delay_ms / 1000
        await out.start_stream(200, headers=headers)
        for index, event in enumerate(events):
            if index == after and kind is FaultKind.STREAM_CUT:
                out.close()
                return
            if index == after and injected is not None:
                await out.write(injected)
                if kind is FaultKind.ECHO_KEY:
                    await out.end_stream()
                    return
            if delay and index:
                await self._sleep(delay)
            await out.write(event)
        await out.end_stream()
