"""``GET /v1/models`` and ``GET /v1/models/{model_id}`` for both SDKs: a request with an
``anthropic-version`` header is the Anthropic SDK and gets Anthropic's shapes (and errors)."""

from __future__ import annotations

import orjson
from fastapi import Request
from fastapi.responses import Response

from palyra.daemon.server.json_response import JSONBytes
from palyra.daemon.surfaces.models.models_format import (
    anthropic_model,
    anthropic_page,
    openai_list,
    openai_model,
)
from palyra.daemon.surfaces.openai.chat_api import app_state

ANTHROPIC_VERSION = "anthropic-version"


async def list_models(request: Request) -> Response:
    state = app_state(request)
    models = state.config.model_provider.models
    if ANTHROPIC_VERSION in request.headers:
        body = anthropic_page(models, state.started_at, request.query_params)
    else:
        body = openai_list(models, state.started_at)
    return JSONBytes(orjson.dumps(body), {})


async def get_model(request: Request) -> Response:
    """One configured model by id or alias; an unknown one is a 404 listing the known ids."""
    state = app_state(request)
    model = state.runtime.registry.resolve(request.path_params["model_id"])
    if ANTHROPIC_VERSION in request.headers:
        body = anthropic_model(model, state.started_at)
    else:
        body = openai_model(model, state.started_at)
    return JSONBytes(orjson.dumps(body), {})
