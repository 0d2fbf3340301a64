"""Request ids, x-palyra-* headers and the one access line per request (text and JSON)."""

from __future__ import annotations

import io
import logging
from typing import Any

import httpx2
import orjson
import pytest
from observe_support import FakeClock, failover_trail
from starlette.types import Message, Receive, Scope, Send

from palyra.config.schema import default_config
from palyra.daemon import AppState
from palyra.daemon.observe.exchange import ObservabilityMiddleware
from palyra.daemon.observe.logging_setup import (
    ACCESS_LOGGER,
    TextFormatter,
    configure_logging,
)
from palyra.model import Usage

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any


def test_incoming_request_id_is_echoed_and_a_bad_one_replaced(daemon: RunningDaemon) -> None:
    url = f"{daemon.url}/v1/models"
    mine = httpx2.get(url, headers=daemon.headers | {"x-request-id": "trace-42.a:b"})
    assert mine.headers["x-palyra-request-id"] == "trace-42.a:b"
    for bad in ("has space", "x" * 129, "semi;colon"):
        response = httpx2.get(url, headers=daemon.headers | {"x-request-id": bad})
        assert len(response.headers["x-palyra-request-id"]) == 32
    fresh = {httpx2.get(url, headers=daemon.headers).headers["x-palyra-request-id"] for _ in "ab"}
    assert len(fresh) == 2
    refused = httpx2.get(url)
    assert refused.status_code == 401 and refused.headers["x-palyra-request-id"]


def test_one_json_access_line_per_request_without_secrets(
    daemon: RunningDaemon, access_lines: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = daemon.openai_client()
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    assert len(list(stream)) > 2
    response = httpx2.get(
        f"{daemon.url}/v1/models?key=sekrit", headers=daemon.headers | {"x-request-id": "req-7"}
    )
    lines = [orjson.loads(line) for line in access_lines.getvalue().splitlines()]
    assert len(lines) == 2  # one per request, none per chunk
    chat, models = lines
    assert set(chat) == {
        "ts",
        "level",
        "logger",
        "msg",
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
        "model",
        "attempts",
        "upstream_ms",
    }
    assert chat["attempts"] == "deterministic/deterministic:ok"
    assert (chat["method"], chat["path"], chat["status"], chat["model"]) == (
        "POST",
        "/v1/chat/completions",
        200,
        "default",
    )
    assert chat["logger"] == ACCESS_LOGGER and chat["level"] == "info"
    assert isinstance(chat["duration_ms"], float) and chat["duration_ms"] >= 0
    assert models["request_id"] == response.headers["x-palyra-request-id"] == "req-7"
    assert models["path"] == "/v1/models" and models["model"] is None
    # uvicorn.access is off in the daemon (access_log=False); only pytest's capture hooks it.
    server_side = [
        r.getMessage() + str(getattr(r, "access", ""))
        for r in caplog.records
        if r.name.startswith("palyra") or r.name == "uvicorn.error"
    ]
    everything = access_lines.getvalue() + "\n".join(server_side)
    assert daemon.client_token not in everything
    assert "sekrit" not in everything and "authorization" not in everything.lower()


def test_text_access_line_reads_as_one_line() -> None:
    record = logging.LogRecord(
        ACCESS_LOGGER, logging.INFO, __file__, 1, "GET /v1/models 200 1.0ms", None, None
    )
    line = TextFormatter().format(record)
    assert line.endswith("INFO palyra.access: GET /v1/models 200 1.0ms") and "\n" not in line


def test_configure_logging_installs_one_handler_in_the_chosen_format() -> None:
    root = logging.getLogger()
    saved, saved_level = list(root.handlers), root.level
    try:
        buffer = io.StringIO()
        configure_logging("warning", "json", buffer)
        configure_logging("info", "json", buffer)
        assert len(root.handlers) == 1 and root.level == logging.INFO
        logging.getLogger("palyra.test").info("hello %s", "there")
        assert orjson.loads(buffer.getvalue())["msg"] == "hello there"
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(saved_level)


async def test_handler_hooks_feed_headers_metrics_and_the_log(
    access_lines: io.StringIO,
) -> None:
    clock = FakeClock()
    state = AppState.from_config(default_config())

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        hooks = scope["state"]
        clock.now += 0.010  # Palyra's own work
        with hooks["upstream_timer"].waiting():
            clock.now += 0.250  # waiting for the provider
        hooks["attempt_trail"] = failover_trail()
        hooks["usage"] = Usage(input_tokens=3, output_tokens=5)
        hooks["stream_interrupted"] = True
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-palyra-model", b"slow")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = ObservabilityMiddleware(handler, state=state, routes=[], clock=clock)
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    await middleware(scope, receive, send)

    headers = dict(sent[0]["headers"])
    assert headers[b"x-palyra-attempts"] == (
        b"openai-main/up-fast:rate_limited,openai-main/up-slow:ok"
    )
    assert headers[b"x-palyra-overhead-ms"] == b"10"
    metrics = state.metrics
    assert metrics.upstream_attempts.get(("openai-main", "up-fast", "rate_limited")) == 1
    assert metrics.failovers.get(("slow",)) == 1
    assert metrics.tokens.get(("slow", "input")) == 3
    assert metrics.tokens.get(("slow", "output")) == 5
    assert metrics.stream_interruptions.get(("unmatched", "slow", "upstream")) == 1
    line = orjson.loads(access_lines.getvalue())
    assert line["upstream_ms"] == 250.0 and line["interrupted"] == "upstream"
    assert line["attempts"].startswith("openai-main/up-fast")


async def test_overhead_header_is_omitted_when_no_upstream_was_timed() -> None:
    state = AppState.from_config(default_config())

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"]["attempt_trail"] = "p/m:ok"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    await ObservabilityMiddleware(handler, state=state, routes=[])(scope, receive, send)
    headers = dict(sent[0]["headers"])
    assert b"x-palyra-overhead-ms" not in headers
    assert headers[b"x-palyra-attempts"] == b"p/m:ok"
