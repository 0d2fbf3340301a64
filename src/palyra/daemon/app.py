"""The app factory: every route and error handler of the daemon, listed in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from palyra import __version__
from palyra.daemon.cron_host import CronHost
from palyra.daemon.observe.exchange import (
    LOGGED_FAILURE,
    ObservabilityMiddleware,
    metrics_endpoint,
)
from palyra.daemon.observe.failures import log_unexpected
from palyra.daemon.observe.readiness import Readiness, redis_probe
from palyra.daemon.schemas import STORE_SCHEMAS
from palyra.daemon.security.auth_guard import GuardMiddleware
from palyra.daemon.security.policy import anthropic_caller, whoami
from palyra.daemon.server.front import HotPath, PalyraApp, first_routes
from palyra.daemon.state import AppState
from palyra.daemon.surfaces import openapi_docs as docs
from palyra.daemon.surfaces.anthropic import messages_api as anthropic_api
from palyra.daemon.surfaces.console.console_api import mount_console
from palyra.daemon.surfaces.console.cron_api import mount_cron
from palyra.daemon.surfaces.console.pages import mount_pages
from palyra.daemon.surfaces.console.session_api import mount_session
from palyra.daemon.surfaces.models import models_api
from palyra.daemon.surfaces.openai import chat_api as openai_api
from palyra.daemon.surfaces.openai import media_api as openai_media_api
from palyra.daemon.surfaces.responses import api as responses_api
from palyra.model import ErrorEnvelope, FailureClass, PalyraError

log = logging.getLogger("palyra.daemon")

ErrorRenderer = Callable[[ErrorEnvelope], Response]
OPENAI = docs.error_responses(docs.MODEL_STATUSES)
ANTHROPIC = docs.error_responses(docs.MODEL_STATUSES, docs.ANTHROPIC_ERROR)
EXPOSED_HEADERS = (
    "x-palyra-request-id",
    "x-palyra-model",
    "x-palyra-attempts",
    "x-palyra-route",
    "x-palyra-overhead-ms",
    "request-id",
)

# The model routes: an exact (method, path) hit skips FastAPI's stack (see palyra.daemon.server.front).
HOT_PATHS = (
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/embeddings",
    "/v1/responses",
)

# Each surface answers errors in its own API's shape: (path prefix, renderer), first match wins.
ERROR_RENDERERS: list[tuple[str, ErrorRenderer]] = [
    ("/v1/messages", anthropic_api.anthropic_error_response),
    ("/", openai_api.openai_error_response),
]


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    """Readiness (see :mod:`palyra.daemon.observe.readiness`): 200 or 503 with the reason."""
    report = await request.app.state.readiness.check()
    return Response(
        orjson.dumps(report.to_json()),
        status_code=200 if report.ready else 503,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def render_error(path: str, envelope: ErrorEnvelope, anthropic: bool = False) -> Response:
    """The error in the caller's shape: Anthropic's for an Anthropic caller (its routes, or the
    model routes with ``anthropic-version``), else by path."""
    if anthropic:
        return anthropic_api.anthropic_error_response(envelope)
    renderer = next(r for prefix, r in ERROR_RENDERERS if path.startswith(prefix))
    return renderer(envelope)


def _render(request: Request, envelope: ErrorEnvelope) -> Response:
    path = request.url.path
    return render_error(path, envelope, anthropic_caller(path, request.headers))


async def _palyra_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PalyraError)
    return _render(request, exc.envelope)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 replaced by a 400 in the surface's shape, without echoing the input."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "body"
    message = errors[0]["msg"] if errors else "invalid request"
    envelope = ErrorEnvelope.of(FailureClass.INVALID_REQUEST, f"{where}: {message}", param=where)
    return _render(request, envelope)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    failure = FailureClass.NOT_FOUND if exc.status_code == 404 else FailureClass.INVALID_REQUEST
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return _render(request, ErrorEnvelope.of(failure, message, http_status=exc.status_code))


async def _internal_error(request: Request, exc: Exception) -> Response:
    hooks = request.scope.setdefault("state", {})
    hooks[LOGGED_FAILURE] = exc  # Starlette raises it again after this answer: logged once
    log_unexpected(log, exc, f"{request.method} {request.url.path}", hooks.get("request_id"))
    envelope = ErrorEnvelope.of(
        FailureClass.INTERNAL, "Palyra failed on this request; the daemon log has the details"
    )
    return _render(request, envelope)


def create_app(state: AppState) -> FastAPI:
    """The daemon as an ASGI app over ``state``; the app closes the state's providers on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.auth.start()
        await state.start()
        await cron.start()
        try:
            yield
        finally:
            await readiness.aclose()
            await cron.aclose()
            await console.aclose()
            await state.auth.aclose()
            await state.aclose()

    app = PalyraApp(
        title="Palyra",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.palyra = state
    app.palyra_state = state

    app.add_api_route("/healthz", healthz, methods=["GET"])
    probes = list(state.readiness_probes)
    if state.shared is not None:
        probes.append(("redis", redis_probe(state.shared)))
    readiness = Readiness(
        state.config,
        state.state_dir,
        STORE_SCHEMAS,
        environ=state.environ,
        probes=probes,
    )
    app.state.readiness = readiness
    app.add_api_route("/readyz", readyz, methods=["GET"], responses=docs.READINESS_RESPONSES)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"])
    app.add_api_route("/console/v1/whoami", whoami, methods=["GET"])
    console = mount_console(app, state)
    mount_session(app)
    mount_pages(app)
    cron = CronHost(state, run_scheduler=state.run_scheduler)
    app.state.cron = cron
    mount_cron(app)
    app.add_api_route(
        "/v1/models",
        models_api.list_models,
        methods=["GET"],
        responses=docs.error_responses(docs.MODELS_STATUSES),
        openapi_extra=docs.MODELS_QUERY,
    )
    app.add_api_route(
        "/v1/models/{model_id:path}",
        models_api.get_model,
        methods=["GET"],
        responses=docs.error_responses(docs.MODELS_STATUSES),
        openapi_extra=docs.MODEL_ID_PARAM,
    )
    for path, endpoint, body, errors in (
        ("/v1/chat/completions", openai_api.chat_completions, docs.CHAT_BODY, OPENAI),
        ("/v1/embeddings", openai_media_api.embeddings, docs.EMBEDDINGS_BODY, OPENAI),
        (
            "/v1/audio/transcriptions",
            openai_media_api.transcriptions,
            docs.TRANSCRIPTION_BODY,
            OPENAI,
        ),
        ("/v1/responses", responses_api.create_response, docs.RESPONSES_BODY, OPENAI),
        ("/v1/messages", anthropic_api.messages, docs.MESSAGES_BODY, ANTHROPIC),
        (
            "/v1/messages/count_tokens",
            anthropic_api.count_tokens,
            docs.COUNT_TOKENS_BODY,
            ANTHROPIC,
        ),
    ):
        app.add_api_route(path, endpoint, methods=["POST"], openapi_extra=body, responses=errors)
    stored = docs.error_responses(docs.STORED_STATUSES)
    app.add_api_route(
        "/v1/responses/{response_id}",
        responses_api.get_response,
        methods=["GET"],
        responses=stored,
        openapi_extra=docs.RESPONSE_ID_PARAM,
    )
    app.add_api_route(
        "/v1/responses/{response_id}/input_items",
        responses_api.list_input_items,
        methods=["GET"],
        responses=docs.error_responses(docs.LISTED_STATUSES),
        openapi_extra=docs.INPUT_ITEMS_PARAMS,
    )
    app.add_api_route(
        "/v1/responses/{response_id}",
        responses_api.delete_response,
        methods=["DELETE"],
        responses=stored,
        openapi_extra=docs.RESPONSE_ID_PARAM,
    )
    docs.install_openapi(app)

    app.add_exception_handler(PalyraError, _palyra_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    # The front: the model routes' hot path, then the chain, outermost first: observability
    # sees every request, CORS answers preflights before the guard asks for a token, FastAPI.
    cors = state.config.daemon.cors_origins
    hot = first_routes(app, HOT_PATHS)

    def front(fastapi_app: ASGIApp) -> ASGIApp:
        guard = GuardMiddleware(fastapi_app, state=state, render=render_error)
        chain: ASGIApp = guard
        if cors:
            chain = CORSMiddleware(
                chain,
                allow_origins=cors,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["*"],
                expose_headers=list(EXPOSED_HEADERS),
            )
        observer = ObservabilityMiddleware(
            chain, state=state, routes=app.router.routes, on_error=_internal_error
        )
        return HotPath(
            observer,
            routes=hot,
            handlers=app.exception_handlers,
            observer=observer,
            guard=guard,
            cors=bool(cors),
        )

    app.install_front(front)
    return app
