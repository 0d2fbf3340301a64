"""The Anthropic-compatible HTTP handlers; the wire format itself lives in ``anthropic_format``.

Clients may authenticate with ``x-api-key`` or ``Authorization: Bearer``, as Anthropic's SDK
allows either; neither is refused here (client auth is checked in front of these handlers).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from palyra.daemon import dispatch
from palyra.daemon.anthropic_format import (
    MessageEventEncoder,
    error_json,
    load_body,
    message_json,
    parse_messages_request,
    sse,
)
from palyra.daemon.openai_api import app_state, read_body
from palyra.model import (
    ErrorEnvelope,
    ErrorEvent,
    FailureClass,
    PalyraError,
    StreamEvent,
    check_chat_request,
)
from palyra.providers.tokens import estimate_token_count

log = logging.getLogger("palyra.daemon")

JSON = "application/json"


def anthropic_error_response(envelope: ErrorEnvelope) -> Response:
    """An envelope as Anthropic's error JSON, with its status and ``Retry-After`` when known."""
    headers = {}
    if envelope.retry_after_s is not None:
        headers["retry-after"] = str(math.ceil(envelope.retry_after_s))
    return Response(
        orjson.dumps(error_json(envelope)),
        status_code=envelope.http_status,
        media_type=JSON,
        headers=headers,
    )


def _headers(request: Request, model_id: str) -> dict[str, str]:
    return {"x-palyra-model": model_id, "request-id": f"req_{request.state.request_id}"}


async def messages(request: Request) -> Response:
    state = app_state(request)
    raw = await read_body(request, state.config.daemon.max_body_bytes)
    parsed = parse_messages_request(load_body(raw))
    target = state.resolve(parsed.model, "chat")
    neutral = parsed.model_copy(update={"model": target.upstream_model})
    check_chat_request(neutral, state.limits)
    headers = _headers(request, target.id)
    if not neutral.stream:
        response = await dispatch.chat(target, neutral)
        return Response(orjson.dumps(message_json(response)), media_type=JSON, headers=headers)
    events = dispatch.stream_chat(target, neutral)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        raise PalyraError.of(
            FailureClass.MALFORMED_RESPONSE,
            f'provider "{target.config.provider}" ended the stream before sending anything',
            provider=target.config.provider,
            model=target.upstream_model,
        ) from None
    encoder = MessageEventEncoder(
        fallback_id=request.state.request_id,
        model=target.upstream_model,
        input_tokens=estimate_token_count(neutral, target.upstream_model).input_tokens,
    )
    return StreamingResponse(
        _sse_body(first, events, encoder),
        media_type="text/event-stream",
        headers=headers | {"cache-control": "no-cache"},
    )


async def _sse_body(
    first: StreamEvent, events: AsyncIterator[StreamEvent], encoder: MessageEventEncoder
) -> AsyncIterator[bytes]:
    """Encode events as they arrive; a failure mid-way becomes ``event: error`` and no stop."""
    try:
        event = first
        while True:
            frame = encoder.encode(event)
            if frame:
                yield frame
            if isinstance(event, ErrorEvent):
                return
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
        yield encoder.finish()
    except PalyraError as exc:
        yield sse("error", error_json(exc.envelope))
    except Exception:
        log.exception("messages stream failed")
        internal = ErrorEnvelope.of(FailureClass.INTERNAL, "the stream failed inside Palyra")
        yield sse("error", error_json(internal))
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


async def count_tokens(request: Request) -> Response:
    """Input tokens from the provider when it can count, else Palyra's own estimate."""
    state = app_state(request)
    raw = await read_body(request, state.config.daemon.max_body_bytes)
    parsed = parse_messages_request(load_body(raw), require_max_tokens=False)
    target = state.resolve(parsed.model, "chat")
    neutral = parsed.model_copy(update={"model": target.upstream_model})
    check_chat_request(neutral, state.limits)
    if target.provider.capabilities.count_tokens:
        tokens = (await dispatch.count_tokens(target, neutral)).input_tokens
    else:
        tokens = estimate_token_count(neutral, target.upstream_model).input_tokens
    body = orjson.dumps({"input_tokens": tokens})
    return Response(body, media_type=JSON, headers=_headers(request, target.id))
