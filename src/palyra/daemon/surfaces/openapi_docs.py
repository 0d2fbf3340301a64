"""What the daemon's OpenAPI document says each route takes and answers, built in one place.

The ``/v1`` body routes read their bodies by hand (to keep provider-shaped errors and avoid a
second parse), so FastAPI cannot infer their request bodies; the schemas here declare them,
permissive past the required fields, as the parsers are. Every error status a route can answer
is declared with the body the surface renders: OpenAI's ``{"error": {...}}`` everywhere except
``/v1/messages*``, which answers Anthropic's ``{"type": "error", "error": {...}}``. FastAPI's
automatic 422 is removed from the document because the app answers 400 instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

JSON = "application/json"
HTML = "text/html"

OPENAI_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

ANTHROPIC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}

_DESCRIPTIONS = {
    400: "The request is invalid; the message names the field and the fix",
    401: "No token, or an unknown, expired or revoked one",
    403: "The token may not use this route, or the upstream refused the credential",
    404: "No such model, profile, attempt or token",
    409: "The request conflicts with the daemon's current state",
    413: "The body is larger than [daemon] max_body_bytes",
    429: "Rate limited or out of quota upstream, on every candidate",
    500: "Palyra failed, or its configuration is unusable; the daemon log has the details",
    502: "The upstream could not be reached or answered unusably",
    503: "Every candidate is unavailable (overloaded, or breakers open)",
    504: "The upstream did not answer in time",
}

# Statuses the routes that call a model can answer, besides 200.
MODEL_STATUSES = (400, 401, 403, 404, 413, 429, 500, 502, 503, 504)


def error_responses(
    statuses: Iterable[int], schema: dict[str, Any] = OPENAI_ERROR
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for ``statuses``, each with the surface's error body."""
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {JSON: {"schema": schema}},
        }
        for status in statuses
    }


def html_responses(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route that answers a browser with an HTML page."""
    return {
        status: {"description": _DESCRIPTIONS.get(status, "OK"), "content": {HTML: {}}}
        for status in statuses
    }


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_MESSAGES = {"type": "array", "items": {"type": "object"}}
_MODEL = {"type": "string"}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON request body."""
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


CHAT_BODY = json_body(_object(["model", "messages"], {"model": _MODEL, "messages": _MESSAGES}))
EMBEDDINGS_BODY = json_body(
    _object(
        ["model", "input"],
        {
            "model": _MODEL,
            "input": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "array", "items": {"type": "integer"}},
                    {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
                ]
            },
        },
    )
)
RESPONSES_BODY = json_body(
    _object(
        ["model"],
        {
            "model": _MODEL,
            "input": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]
            },
            "previous_response_id": {"type": ["string", "null"]},
        },
    )
)
# Statuses of the stored-response routes (no upstream is called).
STORED_STATUSES = (401, 404, 500)
RESPONSE_ID_PARAM: dict[str, Any] = {
    "parameters": [
        {
            "name": "response_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^resp_"},
        }
    ]
}
LISTED_STATUSES = (400, 401, 404, 500)
INPUT_ITEMS_PARAMS: dict[str, Any] = {
    "parameters": [
        *RESPONSE_ID_PARAM["parameters"],
        *(
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in (
                ("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
                ("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
                ("after", {"type": "string"}),
                ("include", {"type": "array", "items": {"type": "string"}}),
            )
        ),
    ]
}
# The model routes answer OpenAI's shapes, or Anthropic's to a caller sending anthropic-version.
MODELS_STATUSES = (400, 401, 404)
MODEL_ID_PARAM: dict[str, Any] = {
    "parameters": [
        {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
}
MODELS_QUERY: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in (
            ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ("after_id", {"type": "string"}),
            ("before_id", {"type": "string"}),
        )
    ]
}
MESSAGES_BODY = json_body(
    _object(
        ["model", "max_tokens", "messages"],
        {"model": _MODEL, "max_tokens": {"type": "integer"}, "messages": _MESSAGES},
    )
)
COUNT_TOKENS_BODY = json_body(
    _object(["model", "messages"], {"model": _MODEL, "messages": _MESSAGES})
)
TRANSCRIPTION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": _object(
                    ["file", "model"],
                    {"file": {"type": "string", "format": "binary"}, "model": _MODEL},
                )
            }
        },
    }
}


_READINESS_CHECK = _object(
    ["name", "ok", "required", "detail"],
    {
        "name": {"type": "string"},
        "ok": {"type": "boolean"},
        "required": {"type": "boolean", "description": "false: failing only degrades"},
        "detail": {"type": "string"},
    },
)
_READINESS = _object(
    ["status", "checks"],
    {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "reason": {"type": "string", "description": "the first failing check: name: detail"},
        "degraded": {
            "type": "array",
            "items": {"type": "string"},
            "description": "failing checks that do not stop serving (Redis)",
        },
        "checks": {"type": "array", "items": _READINESS_CHECK},
    },
)
READINESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Ready to serve", "content": {JSON: {"schema": _READINESS}}},
    503: {
        "description": "Not ready: the reason names the failing check (store or vault)",
        "content": {JSON: {"schema": _READINESS}},
    },
}


def _strip_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve a document without FastAPI's 422 (the app answers 400), built once on first use."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, routes=app.routes, openapi_version="3.1.0"
            )
            app.openapi_schema = _strip_validation_errors(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
