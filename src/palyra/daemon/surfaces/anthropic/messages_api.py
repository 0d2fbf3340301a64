"""The Anthropic-compatible HTTP handlers; the wire format itself lives in ``messages_format``.

Clients may authenticate with ``x-api-key`` or ``Authorization: Bearer``, as Anthropic's SDK
allows either; neither is refused here (client auth is checked in front of these handlers).
"""

from __future__ import annotations

import logging
import math

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from palyra.daemon.server.json_response import JSONBytes
from palyra.daemon.surfaces import dispatch
from palyra.daemon.surfaces.anthropic.messages_format import (
    MessageEventEncoder,
    error_json,
    load_body,
    message_json,
    parse_messages_request,
    sse,
)
from palyra.daemon.surfaces.dispatch import upstream_headers
from palyra.daemon.surfaces.openai.chat_api import app_state, read_body
from palyra.model import (
    ErrorEnvelope,
    check_chat_request,
)
from palyra.model.forwarding import client_headers
from palyra.providers.tokens import estimate_token_count

log = logging.getLogger("palyra.daemon")

JSON = "application/json"


def anthropic_error_response(envelope: ErrorEnvelope) -> Response:
    """An envelope as Anthropic's error JSON, with its status and ``Retry-After`` when known."""
    headers = dict(envelope.headers)  # the upstream's rate-limit and request-id headers
    if envelope.retry_after_s is not None:  # after failover, the soonest of the attempts
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
    sent = client_headers(request.scope["headers"], state.forward_names)
    neutral = parse_messages_request(load_body(raw), headers=sent)
    dispatch.resolve(request, state, neutral.model, "chat")
    check_chat_request(neutral, state.limits)
    dispatch.check_window(state, neutral, "max_tokens")
    if not neutral.stream:
        response, model_id = await dispatch.chat(request, state, neutral)
        body = orjson.dumps(message_json(response))
        return JSONBytes(body, _headers(request, model_id) | response.headers)
    opened = await dispatch.open_stream(request, state, neutral)
    encoder = MessageEventEncoder(
        fallback_id=request.state.request_id,
        model=opened.model_id,
        estimate_input=lambda: estimate_token_count(neutral, neutral.model).input_tokens,
    )
    body_iter = dispatch.sse_body(
        request, opened, encoder.encode, encoder.finish, lambda env: sse("error", error_json(env))
    )
    return StreamingResponse(
        body_iter,
        media_type="text/event-stream",
        headers=_headers(request, opened.model_id)
        | upstream_headers(opened.first)
        | {"cache-control": "no-cache"},
    )


async def count_tokens(request: Request) -> Response:
    """Input tokens from the provider when it can count, else Palyra's own estimate."""
    state = app_state(request)
    raw = await read_body(request, state.config.daemon.max_body_bytes)
    neutral = parse_messages_request(load_body(raw), require_max_tokens=False)
    model = dispatch.resolve(request, state, neutral.model, "chat")
    check_chat_request(neutral, state.limits)
    if state.runtime.providers[model.provider].capabilities.count_tokens:
        tokens = (
            await dispatch.count_tokens(state, model, neutral, dispatch.request_context(request))
        ).input_tokens
    else:
        tokens = estimate_token_count(neutral, model.upstream_model).input_tokens
    body = orjson.dumps({"input_tokens": tokens})
    return JSONBytes(body, _headers(request, model.id))
