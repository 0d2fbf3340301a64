"""Client input that once gave a 500 (and a traceback with the input in the log) is a 400 naming
the field; a failure the daemon does not expect is logged without anything the client sent."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from palyra.config.schema import StorageConfig, default_config
from palyra.daemon import AppState
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TokenKind, generate_token
from palyra.daemon.surfaces import wire_checks
from palyra.daemon.surfaces.wire_checks import MAX_JSON_DEPTH, load_json
from palyra.model import PalyraError

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

SECRET = "client-content-7f3a9b2e"  # stands for whatever a client sends; must never be logged
USER = [{"role": "user", "content": f"hello {SECRET}"}]


def nested(levels: int, leaf: Any = SECRET) -> Any:
    """``levels`` objects, one inside the other, around ``leaf``."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def body_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()  # the stdlib encoder: orjson's own would refuse the depth


def test_depth_limit_is_exact_and_deeper_bodies_name_the_field() -> None:
    # A body of MAX_JSON_DEPTH levels passes; one more level is refused where it gets deep.
    at_limit = {"tools": [{"function": {"parameters": nested(MAX_JSON_DEPTH - 4)}}]}
    assert load_json(body_bytes(at_limit)) == at_limit
    over = {"tools": [{"function": {"parameters": nested(MAX_JSON_DEPTH - 3)}}]}
    with pytest.raises(PalyraError) as info:
        load_json(body_bytes(over))
    envelope = info.value.envelope
    assert envelope.http_status == 400
    assert envelope.param == "tools[0].function.parameters.a.a..."
    assert envelope.message.startswith("tools[0].function.parameters.a.a... nests objects")
    assert f"at most {MAX_JSON_DEPTH}" in envelope.message
    assert SECRET not in envelope.message
    # Arrays count like objects.
    with pytest.raises(PalyraError):
        load_json(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    load_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)


def test_bodies_deeper_than_the_decoder_allows_get_the_same_answer() -> None:
    with pytest.raises(PalyraError) as info:
        load_json(b"[" * 2000 + b"]" * 2000)
    assert info.value.envelope.param == "the request body"
    assert "more than 128 levels deep" in info.value.envelope.message


def test_short_bodies_skip_the_depth_test(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(wire_checks, "check_depth", calls.append)
    load_json(b'{"model": "m", "messages": []}')
    assert calls == []
    load_json(body_bytes({"messages": [{"content": "x" * 300}]}))
    assert len(calls) == 1


DEEP_OPENAI: list[tuple[str, dict[str, Any], str]] = [
    (
        "tool parameters",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": nested(300)}}]},
        "tools[0].function.parameters.a.a...",
    ),
    (
        "json_schema.schema",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": nested(300)},
            }
        },
        "response_format.json_schema.schema.a.a.a...",
    ),
]


@pytest.mark.parametrize(("case", "extra", "param"), DEEP_OPENAI, ids=[c[0] for c in DEEP_OPENAI])
def test_deep_json_on_the_openai_surface_is_a_400_naming_the_field(
    client: openai.OpenAI, case: str, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="default", messages=USER, **extra)  # type: ignore[call-overload]
    error = info.value.body
    assert isinstance(error, dict)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert "levels deep" in error["message"]


def anthropic_client(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


DEEP_ANTHROPIC: list[tuple[str, dict[str, Any], str]] = [
    (
        "input_schema",
        {"messages": USER, "tools": [{"name": "f", "input_schema": nested(300)}]},
        "tools[0].input_schema.a.a.a...",
    ),
    (
        "tool_use.input",
        {
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "f", "input": nested(300)}
                    ],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
            ]
        },
        "messages[1].content[0].input.a...",
    ),
]


@pytest.mark.parametrize(
    ("case", "fields", "param"), DEEP_ANTHROPIC, ids=[c[0] for c in DEEP_ANTHROPIC]
)
def test_deep_json_on_the_anthropic_surface_is_a_400_for_messages_and_count_tokens(
    daemon: RunningDaemon, case: str, fields: dict[str, Any], param: str
) -> None:
    claude = anthropic_client(daemon)
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="default", max_tokens=16, **fields)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert info.value.body["error"]["message"].startswith(param)  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as counted:
        claude.messages.count_tokens(model="default", **fields)
    assert counted.value.body["error"]["message"].startswith(param)  # type: ignore[index]


@pytest.mark.parametrize(
    ("json_schema", "param"),
    [
        ({"name": "x", "schema": SECRET}, "response_format.json_schema.schema"),
        ({"name": "x", "schema": [1, 2]}, "response_format.json_schema.schema"),
        ({"name": 7, "schema": {}}, "response_format.json_schema.name"),
    ],
)
def test_a_json_schema_of_the_wrong_type_is_a_400(
    client: openai.OpenAI, json_schema: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="default",
            messages=USER,  # type: ignore[arg-type]
            response_format={"type": "json_schema", "json_schema": json_schema},  # type: ignore[typeddict-item]
        )
    assert info.value.body["param"] == param  # type: ignore[index]
    assert SECRET not in info.value.body["message"]  # type: ignore[index]


def test_a_tool_without_a_valid_name_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="default",
            messages=USER,  # type: ignore[arg-type]
            tools=[{"type": "function", "function": {"name": "no spaces allowed"}}],  # type: ignore[list-item]
        )
    assert info.value.body["message"].startswith("tools[0].function.name:")  # type: ignore[index]


@pytest.fixture
def token_console(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunningDaemon, str]:
    monkeypatch.setenv("PALYRA_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    config = default_config().model_copy(update={"storage": StorageConfig(url=url)})
    admin = generate_token(TokenKind.ADMIN)
    auth = Authenticator(store_url=url, state_dir=tmp_path, fixed_tokens={admin: TokenKind.ADMIN})
    return start_daemon(AppState.from_config(config), auth=auth), admin


@pytest.mark.parametrize("days", [b"1e300", b"1e400", b"36501"])
def test_token_lifetimes_out_of_range_are_400s_and_create_nothing(
    token_console: tuple[RunningDaemon, str], days: bytes
) -> None:
    daemon, admin = token_console
    headers = {"authorization": f"Bearer {admin}", "content-type": "application/json"}
    response = httpx2.post(
        f"{daemon.url}/console/v1/tokens",
        content=b'{"name": "ci", "expires_days": ' + days + b"}",
        headers=headers,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "body.expires_days"
    listed = httpx2.get(f"{daemon.url}/console/v1/tokens", headers=headers)
    assert listed.json() == {"data": []}
    made = httpx2.post(
        f"{daemon.url}/console/v1/tokens", json={"expires_days": 36500}, headers=headers
    )
    assert made.status_code == 201
    created, expires = made.json()["created"], made.json()["expires"]
    assert int(expires[:4]) - int(created[:4]) in (99, 100)


def test_token_names_with_control_characters_are_400s(
    token_console: tuple[RunningDaemon, str],
) -> None:
    daemon, admin = token_console
    headers = {"authorization": f"Bearer {admin}"}
    for name in ("nul\u0000", "esc\u001b[31m", "bidi\u202e"):
        response = httpx2.post(
            f"{daemon.url}/console/v1/tokens", json={"name": name}, headers=headers
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "name"
    assert httpx2.get(f"{daemon.url}/console/v1/tokens", headers=headers).json() == {"data": []}


def _assert_logged_without_content(caplog: pytest.LogCaptureFixture, request_id: str) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the unexpected failure was not logged"
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
    assert SECRET not in caplog.text
    line = next(r.getMessage() for r in errors if request_id in r.getMessage())
    assert "RuntimeError" in line
    assert "the request's content is not logged" in line


def test_an_unexpected_failure_on_a_model_route_logs_no_request_content(
    daemon: RunningDaemon, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"failed on {args!r}")  # a bug whose message quotes the request

    monkeypatch.setattr("palyra.daemon.surfaces.dispatch.check_window", broken)
    caplog.set_level(logging.DEBUG)
    response = httpx2.post(
        f"{daemon.url}/v1/chat/completions",
        json={"model": "default", "messages": USER},
        headers={**daemon.headers, "x-request-id": "req-model-route-1"},
    )
    assert response.status_code == 500
    assert SECRET not in response.text
    _assert_logged_without_content(caplog, "req-model-route-1")


def test_an_unexpected_failure_on_a_console_route_logs_no_request_content(
    daemon: RunningDaemon, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> list[Any]:
        raise RuntimeError(f"snapshot failed for {SECRET}")

    monkeypatch.setattr(daemon.state.runtime.health, "snapshot", broken)
    caplog.set_level(logging.DEBUG)
    response = httpx2.get(
        f"{daemon.url}/console/v1/providers/health",
        headers={**daemon.admin_headers, "x-request-id": "req-console-1"},
    )
    assert response.status_code == 500
    assert SECRET not in response.text
    _assert_logged_without_content(caplog, "req-console-1")


def test_an_unexpected_failure_mid_stream_logs_no_request_content(
    daemon: RunningDaemon, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from palyra.daemon.surfaces.openai.chat_format import ChunkEncoder

    real = ChunkEncoder.encode

    def encode(self: ChunkEncoder, event: Any) -> bytes:
        if type(event).__name__ == "TextDelta":
            raise RuntimeError(f"cannot encode {event!r}")
        return real(self, event)

    monkeypatch.setattr(ChunkEncoder, "encode", encode)
    caplog.set_level(logging.DEBUG)
    with httpx2.stream(
        "POST",
        f"{daemon.url}/v1/chat/completions",
        json={"model": "default", "messages": USER, "stream": True},
        headers={**daemon.headers, "x-request-id": "req-stream-1"},
    ) as response:
        body = response.read()
    assert b'"type":"server_error"' in body
    _assert_logged_without_content(caplog, "req-stream-1")
