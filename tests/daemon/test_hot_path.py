"""The model routes' hot path (``palyra.daemon.server.front``) on a real daemon: which requests take it,
and that they are observed, guarded and answer errors exactly as the FastAPI routes do."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from palyra.config.schema import DaemonConfig, default_config
from palyra.daemon import AppState
from palyra.daemon.app import HOT_PATHS
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore, generate_token
from palyra.daemon.server.front import HotPath, PalyraApp, first_routes
from palyra.daemon.surfaces import dispatch
from palyra.store import open_store

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

CHAT: dict[str, Any] = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES: dict[str, Any] = CHAT | {"max_tokens": 16}
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": CHAT,
    "/v1/messages": MESSAGES,
    "/v1/messages/count_tokens": MESSAGES,
    "/v1/embeddings": {"model": "embed", "input": "hi"},
}


class FallbackCounter:
    """Counts what the hot path hands on to FastAPI (wrapped around the real fallback)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def _hot_routes(app: FastAPI | None) -> HotPath:
    assert isinstance(app, PalyraApp) and isinstance(app.front, HotPath)
    return app.front


@pytest.fixture
def fallback(daemon: RunningDaemon) -> FallbackCounter:
    hot = _hot_routes(daemon.app)
    counter = FallbackCounter(hot.app)
    hot.app = counter
    return counter


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def _requests_total(daemon: RunningDaemon, route: str, model: str, status: int) -> float:
    text = httpx2.get(f"{daemon.url}/metrics", headers=daemon.headers).text
    labels = f'{{route="{route}",model="{model}",status="{status}"}}'
    match = re.search(rf"^palyra_requests_total{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _assert_openai_error(response: httpx2.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == kind and "type" not in response.json().keys() - {"error"}
    return error


def _assert_anthropic_error(response: httpx2.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    error: dict[str, Any] = body["error"]
    return error


def test_model_routes_take_the_hot_path_and_everything_else_falls_through(
    daemon: RunningDaemon, fallback: FallbackCounter
) -> None:
    for path, body in BODIES.items():
        response = httpx2.post(f"{daemon.url}{path}", headers=daemon.headers, json=body)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["x-palyra-model"] in {"default", "embed"}
    assert fallback.seen == []
    httpx2.get(f"{daemon.url}/v1/models", headers=daemon.headers)
    httpx2.get(f"{daemon.url}/v1/chat/completions", headers=daemon.headers)
    httpx2.post(f"{daemon.url}/v1/chat/completions/", headers=daemon.headers, json=CHAT)
    httpx2.get(f"{daemon.url}/healthz")
    assert fallback.seen == [
        ("GET", "/v1/models"),
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions/"),
        ("GET", "/healthz"),
    ]


def test_hot_and_fallback_requests_are_observed_alike(
    daemon: RunningDaemon, access_lines: io.StringIO
) -> None:
    chat = httpx2.post(f"{daemon.url}/v1/chat/completions", headers=daemon.headers, json=CHAT)
    models = httpx2.get(
        f"{daemon.url}/v1/models", headers=daemon.headers | {"x-request-id": "mine-1"}
    )
    assert chat.status_code == models.status_code == 200
    chat_id = chat.headers["x-palyra-request-id"]
    assert uuid.UUID(chat_id).version == 4 and uuid.UUID(chat_id).hex == chat_id
    assert models.headers["x-palyra-request-id"] == "mine-1"
    assert chat.headers["x-palyra-attempts"] == "deterministic/deterministic:ok"
    assert int(chat.headers["x-palyra-overhead-ms"]) >= 0
    lines = _lines(access_lines)
    assert [
        (line["method"], line["path"], line["status"], line["request_id"]) for line in lines
    ] == [
        ("POST", "/v1/chat/completions", 200, chat_id),
        ("GET", "/v1/models", 200, "mine-1"),
    ]
    assert (
        lines[0]["model"] == "default" and lines[0]["attempts"] == "deterministic/deterministic:ok"
    )
    assert _requests_total(daemon, "/v1/chat/completions", "default", 200) == 1
    assert _requests_total(daemon, "/v1/models", "none", 200) == 1


def test_malformed_json_is_a_400_in_each_surface_shape(
    daemon: RunningDaemon, access_lines: io.StringIO
) -> None:
    headers = daemon.headers | {"content-type": "application/json"}
    for path in BODIES:
        response = httpx2.post(f"{daemon.url}{path}", headers=headers, content=b'{"model": ')
        if path.startswith("/v1/messages"):
            error = _assert_anthropic_error(response, 400, "invalid_request_error")
        else:
            error = _assert_openai_error(response, 400, "invalid_request_error")
        assert "not valid JSON" in error["message"], path
        assert response.headers["x-palyra-request-id"]
    assert [line["status"] for line in _lines(access_lines)] == [400] * len(BODIES)
    assert _requests_total(daemon, "/v1/messages", "none", 400) == 1


def test_oversized_bodies_are_413_declared_or_chunked(start_daemon: StartDaemon) -> None:
    config = default_config().model_copy(update={"daemon": DaemonConfig(max_body_bytes=1024)})
    running = start_daemon(AppState.from_config(config))
    big = orjson.dumps(CHAT | {"messages": [{"role": "user", "content": "x" * 3000}]})

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 256):
            yield big[start : start + 256]

    for path in BODIES:
        for content in (big, chunks()):
            response = httpx2.post(
                f"{running.url}{path}",
                headers=running.headers | {"content-type": "application/json"},
                content=content,
            )
            if path.startswith("/v1/messages"):
                error = _assert_anthropic_error(response, 413, "request_too_large")
            else:
                error = _assert_openai_error(response, 413, "invalid_request_error")
            assert "larger than 1024 bytes" in error["message"]
            assert response.headers["x-palyra-request-id"]


def test_an_unexpected_exception_is_a_logged_500_in_the_surface_shape(
    daemon: RunningDaemon,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    access_lines: io.StringIO,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("dispatch exploded: secret-internal-detail")

    monkeypatch.setattr(dispatch, "chat", broken)
    caplog.set_level(logging.ERROR, logger="palyra.daemon")
    with httpx2.Client() as client:
        openai_side = client.post(
            f"{daemon.url}/v1/chat/completions", headers=daemon.headers, json=CHAT
        )
        anthropic_side = client.post(
            f"{daemon.url}/v1/messages", headers=daemon.headers, json=MESSAGES
        )
        # The connection is still good for the next request.
        assert client.get(f"{daemon.url}/healthz").status_code == 200
    first = _assert_openai_error(openai_side, 500, "server_error")
    second = _assert_anthropic_error(anthropic_side, 500, "api_error")
    for response, error in ((openai_side, first), (anthropic_side, second)):
        assert "daemon log has the details" in error["message"]
        assert "secret-internal-detail" not in response.text
        assert "Traceback" not in response.text and "RuntimeError" not in response.text
        assert response.headers["x-palyra-request-id"]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert [line.partition(" (")[0] for line in logged] == [
        "unexpected RuntimeError on POST /v1/chat/completions",
        "unexpected RuntimeError on POST /v1/messages",
    ]
    # Where it failed, by request id, and not what the exception said (it may quote the input).
    for line, response in zip(logged, (openai_side, anthropic_side), strict=True):
        assert response.headers["x-palyra-request-id"] in line
        assert "test_hot_path.py:" in line
    assert "secret-internal-detail" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    statuses = [(line["path"], line["status"]) for line in _lines(access_lines)]
    assert statuses[:2] == [("/v1/chat/completions", 500), ("/v1/messages", 500)]
    assert _requests_total(daemon, "/v1/messages", "none", 500) == 1


def test_a_wrong_method_on_a_model_path_is_fastapis_405_in_the_surface_shape(
    daemon: RunningDaemon, fallback: FallbackCounter
) -> None:
    for path in BODIES:
        for method in ("GET", "PUT", "DELETE"):
            response = httpx2.request(method, f"{daemon.url}{path}", headers=daemon.headers)
            if path.startswith("/v1/messages"):
                error = _assert_anthropic_error(response, 405, "invalid_request_error")
            else:
                error = _assert_openai_error(response, 405, "invalid_request_error")
            assert error["message"] == f"{method} {path}: Method Not Allowed"
            assert response.headers["x-palyra-request-id"]
        head = httpx2.head(f"{daemon.url}{path}", headers=daemon.headers)
        assert head.status_code == 405 and head.content == b""
    assert len(fallback.seen) == 4 * len(BODIES)
    assert _requests_total(daemon, "/v1/chat/completions", "none", 405) == 4


def test_refusals_on_model_paths_keep_the_route_label(daemon: RunningDaemon) -> None:
    response = httpx2.post(f"{daemon.url}/v1/embeddings", json=BODIES["/v1/embeddings"])
    _assert_openai_error(response, 401, "authentication_error")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert _requests_total(daemon, "/v1/embeddings", "none", 401) == 1


def test_cors_headers_on_a_hot_route(start_daemon: StartDaemon) -> None:
    config = default_config().model_copy(
        update={"daemon": DaemonConfig(cors_origins=["https://app.example"])}
    )
    running = start_daemon(AppState.from_config(config))
    response = httpx2.post(
        f"{running.url}/v1/chat/completions",
        headers=running.headers | {"origin": "https://app.example"},
        json=CHAT,
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-palyra-model" in response.headers["access-control-expose-headers"]


def test_a_failing_token_store_is_a_500_in_the_surface_shape(
    start_daemon: StartDaemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An error in front of the handlers (here the token store losing its table) is answered
    like one inside them: the app's 500, logged, with a request id."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'tokens.db'}"

    async def create() -> str:
        store = await open_store(url, migrations=(TOKENS_SCHEMA,))
        try:
            token, _ = await TokenStore(store).create(TokenKind.CLIENT, name="ci")
        finally:
            await store.aclose()
        return token

    token = asyncio.run(create())
    running = start_daemon(
        AppState.from_config(default_config()), auth=Authenticator(store_url=url)
    )
    bearer = {"authorization": f"Bearer {token}"}
    assert httpx2.post(f"{running.url}/v1/messages", headers=bearer, json=MESSAGES).is_success
    with sqlite3.connect(tmp_path / "tokens.db") as db:
        db.execute("DROP TABLE daemon_tokens")
    caplog.set_level(logging.ERROR, logger="palyra.daemon")
    unknown = {"authorization": f"Bearer {generate_token(TokenKind.CLIENT)}"}
    anthropic_side = httpx2.post(f"{running.url}/v1/messages", headers=unknown, json=MESSAGES)
    openai_side = httpx2.get(f"{running.url}/v1/models", headers=unknown)
    _assert_anthropic_error(anthropic_side, 500, "api_error")
    _assert_openai_error(openai_side, 500, "server_error")
    for response in (anthropic_side, openai_side):
        assert response.headers["x-palyra-request-id"]
        assert "daemon_tokens" not in response.text and "Traceback" not in response.text
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert [line.partition(" (")[0] for line in logged] == [
        "unexpected OperationalError <- OperationalError on POST /v1/messages",
        "unexpected OperationalError <- OperationalError on GET /v1/models",
    ]
    assert all("palyra/daemon/security/policy.py:" in line for line in logged)
    # Tokens validated before the failure are still served from the cache.
    assert httpx2.post(f"{running.url}/v1/messages", headers=bearer, json=MESSAGES).is_success


def test_the_hot_table_refuses_a_route_fastapi_would_not_pick() -> None:
    async def endpoint(request: Request) -> Response:
        return Response(b"")

    app = PalyraApp()
    app.add_api_route("/v1/{anything}", endpoint, methods=["POST"])
    app.add_api_route("/v1/messages", endpoint, methods=["POST"])
    with pytest.raises(RuntimeError, match="POST /v1/messages is shadowed"):
        first_routes(app, ["/v1/messages"])
    with pytest.raises(RuntimeError, match="expected one registered route"):
        first_routes(app, ["/v1/embeddings"])


def test_every_hot_path_is_in_the_openapi_document(daemon: RunningDaemon) -> None:
    document = httpx2.get(f"{daemon.url}/openapi.json", headers=daemon.headers).json()
    for path in HOT_PATHS:
        assert set(document["paths"][path]) == {"post"}
        assert document["paths"][path]["post"]["requestBody"]["required"] is True
