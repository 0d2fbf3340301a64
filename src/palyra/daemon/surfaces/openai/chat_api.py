"""The OpenAI-compatible HTTP handlers; the wire format itself lives in ``chat_format``."""

from __future__ import annotations

import logging
import math
from typing import cast

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from palyra.daemon.server.json_response import JSONBytes
from palyra.daemon.state import AppState
from palyra.daemon.surfaces import dispatch
from palyra.daemon.surfaces.dispatch import upstream_headers
from palyra.daemon.surfaces.openai.chat_format import (
    ChunkEncoder,
    chat_completion,
    error_json,
    parse_chat_body,
    sse,
)
from palyra.model import (
    ErrorEnvelope,
    FailureClass,
    PalyraError,
    check_chat_request,
)
from palyra.model.forwarding import client_headers

log = logging.getLogger("palyra.daemon")

JSON = "application/json"


def app_state(request: Request) -> AppState:
    """The daemon state behind ``request``'s app (a plain attribute of :class:`PalyraApp`, read
    without going through Starlette's ``State``, whose lookups first fail, then fall back)."""
    return cast(AppState, request.scope["app"].palyra_state)


def openai_error_response(envelope: ErrorEnvelope) -> Response:
    """An envelope as OpenAI's error JSON, with its status and ``Retry-After`` when known."""
    headers = dict(envelope.headers)  # the upstream's rate-limit and request-id headers
    if envelope.retry_after_s is not None:  # after failover, the soonest of the attempts
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
    """The whole body, refused with 413 when it is larger than ``max_bytes`` (a declared length
    over the limit was already refused by the guard, before the body was read)."""
    body = await request.body()
    if len(body) > max_bytes:
        raise _too_large(max_bytes)
    return body


async def chat_completions(request: Request) -> Response:
    state = app_state(request)
    sent = client_headers(request.scope["headers"], state.forward_names)
    parsed = parse_chat_body(await read_body(request, state.config.daemon.max_body_bytes), sent)
    neutral = parsed.request
    dispatch.resolve(request, state, neutral.model, "chat")
    check_chat_request(neutral, state.limits)
    dispatch.check_window(state, neutral, parsed.output_field)
    created = int(state.clock())
    if not neutral.stream:
        response, model_id = await dispatch.chat(request, state, neutral)
        body = orjson.dumps(chat_completion(response, created=created))
        return JSONBytes(body, {**response.headers, "x-palyra-model": model_id})
    opened = await dispatch.open_stream(request, state, neutral)
    encoder = ChunkEncoder(
        fallback_id=f"chatcmpl-{request.state.request_id}",
        model=opened.model_id,
        created=created,
        include_usage=parsed.include_usage,
    )
    body_iter = dispatch.sse_body(
        request, opened, encoder.encode, encoder.finish, lambda env: sse(error_json(env))
    )
    return StreamingResponse(
        body_iter,
        media_type="text/event-stream",
        headers={
            **upstream_headers(opened.first),
            "x-palyra-model": opened.model_id,
            "cache-control": "no-cache",
        },
    )
