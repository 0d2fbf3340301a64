"""``GET /v1/models`` and ``GET /v1/models/{model_id}`` for both SDKs: a request with an
``anthropic-version`` header is the Anthropic SDK and gets Anthropic's shapes (and errors)."""

from __future__ import annotations

import orjson
from fastapi import Request
from fastapi.responses import Response

from palyra.config.schema import ModelConfig
from palyra.daemon.server.json_response import JSONBytes
from palyra.daemon.surfaces.models.models_format import (
    anthropic_model,
    anthropic_page,
    openai_list,
    openai_model,
)
from palyra.daemon.surfaces.openai.chat_api import app_state
from palyra.routing.registry import ModelRegistry

ANTHROPIC_VERSION = "anthropic-version"


def _as_group(registry: ModelRegistry, name: str) -> ModelConfig:
    """A routing group as a model entry: its first model's facts under the group's name."""
    return registry.resolve(name).model_copy(update={"id": name, "aliases": []})


async def list_models(request: Request) -> Response:
    """The configured models, then the routing groups (names a client may send as well)."""
    state = app_state(request)
    registry = state.runtime.registry
    models = state.config.model_provider.models
    if registry.group_ids:
        models = [*models, *(_as_group(registry, g) for g in registry.group_ids)]
    if ANTHROPIC_VERSION in request.headers:
        body = anthropic_page(models, state.started_at, request.query_params)
    else:
        body = openai_list(models, state.started_at)
    return JSONBytes(orjson.dumps(body), {})


async def get_model(request: Request) -> Response:
    """One configured model by id or alias; an unknown one is a 404 listing the known ids."""
    state = app_state(request)
    registry = state.runtime.registry
    name = request.path_params["model_id"]
    model = _as_group(registry, name) if registry.group(name) else registry.resolve(name)
    if ANTHROPIC_VERSION in request.headers:
        body = anthropic_model(model, state.started_at)
    else:
        body = openai_model(model, state.started_at)
    return JSONBytes(orjson.dumps(body), {})
