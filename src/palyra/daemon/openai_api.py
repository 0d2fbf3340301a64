"""The OpenAI-compatible HTTP handlers; the wire format itself lives in ``openai_format``."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from typing import cast

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from palyra.daemon import dispatch
from palyra.daemon.openai_format import (
    ChunkEncoder,
    chat_completion,
    error_json,
    parse_chat_body,
    sse,
)
from palyra.daemon.state import AppState
from palyra.model import (
    ErrorEnvelope,
    ErrorEvent,
    FailureClass,
    PalyraError,
    StreamEvent,
    check_chat_request,
)

log = logging.getLogger("palyra.daemon")

JSON = "application/json"


def app_state(request: Request) -> AppState:
    return cast(AppState, request.app.state.palyra)


def openai_error_response(envelope: ErrorEnvelope) -> Response:
    """An envelope as OpenAI's error JSON, with its status and ``Retry-After`` when known."""
    headers = {}
    if envelope.retry_after_s is not None:
        headers["retry-after"] = str(math.ceil(envelope.retry_after_s))
    return Response(
        orjson.dumps(error_json(envelope)),
        status_code=envelope.http_status,
        media_type=JSON,
        headers=headers,
    )


def _too_large(max_bytes: int) -> PalyraError:
    return PalyraError.of(
        FailureClass.INVALID_REQUEST,
        f"the request body is larger than {max_bytes} bytes; send less, or raise "
        "[daemon] max_body_bytes in palyra.toml",
        http_status=413,
        code="request_too_large",
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused with 413 before reading when it declares more than ``max_bytes``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = await request.body()
    if len(body) > max_bytes:
        raise _too_large(max_bytes)
    return body


async def list_models(request: Request) -> Response:
    state = app_state(request)
    data = [
        {"id": m.id, "object": "model", "created": state.started_at, "owned_by": m.provider}
        for m in state.config.model_provider.models
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)


async def chat_completions(request: Request) -> Response:
    state = app_state(request)
    parsed = parse_chat_body(await read_body(request, state.config.daemon.max_body_bytes))
    target = state.resolve(parsed.request.model, "chat")
    neutral = parsed.request.model_copy(update={"model": target.upstream_model})
    check_chat_request(neutral, state.limits)
    headers = {"x-palyra-model": target.id}
    created = int(state.clock())
    if not neutral.stream:
        response = await dispatch.chat(target, neutral)
        body = orjson.dumps(chat_completion(response, created=created))
        return Response(body, media_type=JSON, headers=headers)
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
    encoder = ChunkEncoder(
        fallback_id=f"chatcmpl-{request.state.request_id}",
        model=target.upstream_model,
        created=created,
        include_usage=parsed.include_usage,
    )
    return StreamingResponse(
        _sse_body(first, events, encoder),
        media_type="text/event-stream",
        headers=headers | {"cache-control": "no-cache"},
    )


async def _sse_body(
    first: StreamEvent, events: AsyncIterator[StreamEvent], encoder: ChunkEncoder
) -> AsyncIterator[bytes]:
    """Encode events as they arrive; a failure mid-way becomes an SSE error and no ``[DONE]``."""
    try:
        event = first
        while True:
            chunk = encoder.encode(event)
            if chunk:
                yield chunk
            if isinstance(event, ErrorEvent):
                return
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
        yield encoder.finish()
    except PalyraError as exc:
        yield sse(error_json(exc.envelope))
    except Exception:
        log.exception("chat stream failed")
        internal = ErrorEnvelope.of(FailureClass.INTERNAL, "the stream failed inside Palyra")
        yield sse(error_json(internal))
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
