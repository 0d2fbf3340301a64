"""Errors that say the right thing: an upstream redirect is the upstream's fault, booleans are
booleans, the output limit is named as the client sent it, codes follow each API's spelling, and
a daemon without its vault key says so."""

from __future__ import annotations

import asyncio
import base64
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    StorageConfig,
    default_config,
)
from palyra.daemon import AppState
from palyra.store import open_store
from palyra.testing import FakeUpstream, Fault, FaultKind
from palyra.vault import KeyResolver, Vault

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_ERROR_WORDING_KEY"
KEY = "sk-error-wording-upstream-key-0123456789"
USER = [{"role": "user", "content": "one two three four five"}]
CHAT = {"model": "main", "messages": USER}


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """Answers every request with a 307 to somewhere else, as an outdated base URL does."""

    seen: list[str] = []

    def _redirect(self) -> None:
        self.seen.append(self.path)
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.send_response(307)
        self.send_header("location", "https://api.example.invalid/v2" + self.path)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = _redirect

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Redirecting,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


def routed(*providers: tuple[str, str, str, str]) -> PalyraConfig:
    """``(provider id, kind, base_url, upstream model)`` each; the first is ``main``, the rest its
    fallbacks in order."""
    provs = [
        ProviderConfig(id=pid, kind=kind, base_url=url, api_key=f"env:{KEY_ENV}")  # type: ignore[arg-type]
        for pid, kind, url, _ in providers
    ]
    ids = ["main"] + [f"alt{i}" for i in range(1, len(providers))]
    models = [
        ModelConfig(
            id=mid, provider=pid, model=upstream, fallbacks=ids[1:] if mid == "main" else []
        )
        for mid, (pid, _, _, upstream) in zip(ids, providers, strict=True)
    ]
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="main",
            providers=provs,
            models=models,
            retry_backoff_ms=1,
            retry_backoff_max_ms=2,
        )
    )


# --- an upstream redirect ---


def test_an_upstream_redirect_is_a_502_upstream_error_tried_once(
    redirecting: tuple[str, list[str]], start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = redirecting
    monkeypatch.setenv(KEY_ENV, KEY)
    daemon = start_daemon(routed(("moved", "openai", url, "gpt-4o-mini")))
    with pytest.raises(openai.InternalServerError) as info:
        daemon.openai_client().chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.status_code == 502
    error = info.value.body
    assert isinstance(error, dict)
    assert error["type"] == "server_error" and error["code"] == "upstream_redirect"
    assert "answered 307 (a redirect)" in error["message"] and "base_url" in error["message"]
    assert "api.example.invalid" not in error["message"]  # where it points is not echoed
    assert (
        info.value.response.headers["x-palyra-attempts"] == "moved/gpt-4o-mini:malformed_response"
    )
    assert len(seen) == 1  # not retried: the same call gets the same redirect

    claude = anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as via_messages:
        claude.messages.create(model="main", max_tokens=8, messages=USER)  # type: ignore[arg-type]
    assert via_messages.value.status_code == 502
    assert via_messages.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_an_upstream_redirect_fails_over(
    redirecting: tuple[str, list[str]], fake: FakeUpstream, start_daemon: StartDaemon
) -> None:
    url, _ = redirecting
    daemon = start_daemon(
        routed(
            ("moved", "openai", url, "gpt-4o-mini"),
            ("live", "openai", fake.openai_base_url, "gpt-4o-mini"),
        )
    )
    raw = daemon.openai_client().chat.completions.with_raw_response.create(**CHAT)  # type: ignore[call-overload]
    assert raw.headers["x-palyra-attempts"] == (
        "moved/gpt-4o-mini:malformed_response,live/gpt-4o-mini:ok"
    )


# --- strict booleans ---

OPENAI_BOOLEANS: list[tuple[dict[str, Any], str]] = [
    ({"stream": "yes"}, "stream"),
    ({"stream": 1}, "stream"),
    ({"stream": 0}, "stream"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"stream_options": "usage"}, "stream_options"),
    ({"parallel_tool_calls": "false"}, "parallel_tool_calls"),
    ({"logprobs": "true"}, "logprobs"),
    ({"store": 1}, "store"),
    (
        {"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]},
        "tools[0].function.strict",
    ),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {}, "strict": 1},
            }
        },
        "response_format.json_schema.strict",
    ),
]


@pytest.mark.parametrize(("extra", "field"), OPENAI_BOOLEANS)
def test_openai_booleans_must_be_booleans(
    daemon: RunningDaemon, extra: dict[str, Any], field: str
) -> None:
    body = {"model": "default", "messages": USER, **extra}
    response = httpx2.post(f"{daemon.url}/v1/chat/completions", json=body, headers=daemon.headers)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith(field), message
    assert "true or false" in message or "boolean" in message or "JSON object" in message


ANTHROPIC_BOOLEANS: list[tuple[dict[str, Any], str]] = [
    ({"stream": "yes"}, "stream"),
    (
        {
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"},
        },
        "tool_choice.disable_parallel_tool_use",
    ),
    (
        {
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "true"}],
                },
            ]
        },
        "messages[2].content[0].is_error",
    ),
]


@pytest.mark.parametrize(("extra", "field"), ANTHROPIC_BOOLEANS)
def test_anthropic_booleans_must_be_booleans(
    daemon: RunningDaemon, extra: dict[str, Any], field: str
) -> None:
    body = {"model": "default", "max_tokens": 8, "messages": USER, **extra}
    response = httpx2.post(f"{daemon.url}/v1/messages", json=body, headers=daemon.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(field)


def test_responses_stream_must_be_a_boolean(daemon: RunningDaemon) -> None:
    body = {"model": "default", "input": "hi", "stream": "yes"}
    response = httpx2.post(f"{daemon.url}/v1/responses", json=body, headers=daemon.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "stream"


def test_a_null_stream_is_a_whole_answer(daemon: RunningDaemon) -> None:
    body = {"model": "default", "messages": USER, "stream": None}
    response = httpx2.post(f"{daemon.url}/v1/chat/completions", json=body, headers=daemon.headers)
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"


# --- the output limit, named as the client sent it ---


@pytest.fixture
def small_window(start_daemon: StartDaemon) -> RunningDaemon:
    config = default_config()
    models = [
        m.model_copy(update={"context_window": 64}) if m.id == "default" else m
        for m in config.model_provider.models
    ]
    section = config.model_provider.model_copy(update={"models": models})
    return start_daemon(config.model_copy(update={"model_provider": section}))


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_a_context_error_names_the_openai_field_sent(
    small_window: RunningDaemon, field: str
) -> None:
    client = small_window.openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="default", messages=USER, **{field: 500})  # type: ignore[call-overload]
    message = info.value.body["message"]  # type: ignore[index]
    assert info.value.code == "context_length_exceeded"
    assert message.endswith(f"shorten the conversation or lower {field}"), message
    with pytest.raises(openai.BadRequestError) as zero:
        client.chat.completions.create(model="default", messages=USER, **{field: 0})  # type: ignore[call-overload]
    assert zero.value.body["message"].startswith(f"{field}:")  # type: ignore[index]


def test_a_context_error_names_max_tokens_on_the_messages_api(small_window: RunningDaemon) -> None:
    claude = anthropic.Anthropic(
        base_url=small_window.url, api_key=small_window.client_token, max_retries=0
    )
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="default", max_tokens=500, messages=USER)  # type: ignore[arg-type]
    message = info.value.body["error"]["message"]  # type: ignore[index]
    assert message.endswith("shorten the conversation or lower max_tokens"), message
    assert "max_output_tokens" not in message


def test_without_an_output_limit_the_context_error_says_only_to_shorten(
    small_window: RunningDaemon,
) -> None:
    long_prompt = [{"role": "user", "content": "word " * 200}]
    with pytest.raises(openai.BadRequestError) as info:
        small_window.openai_client().chat.completions.create(model="default", messages=long_prompt)  # type: ignore[arg-type]
    assert info.value.body["message"].endswith("shorten the conversation")  # type: ignore[index]


# --- error codes and types in each API's spelling ---

TYPE_NAMES = {
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
    "server_error",
}


def test_openai_error_codes_are_specific_codes_or_null(daemon: RunningDaemon) -> None:
    post = lambda path, **kw: httpx2.post(f"{daemon.url}{path}", headers=daemon.headers, **kw)  # noqa: E731
    cases = {
        "malformed": (post("/v1/chat/completions", content=b"{"), None),
        "bad field": (
            post("/v1/chat/completions", json={"model": "default", "messages": []}),
            None,
        ),
        "unknown route": (httpx2.get(f"{daemon.url}/v1/nope", headers=daemon.headers), None),
        "unknown model": (
            post("/v1/chat/completions", json={"model": "nope", "messages": USER}),
            "model_not_found",
        ),
        "console 404": (
            httpx2.get(f"{daemon.url}/console/v1/nope", headers=daemon.admin_headers),
            None,
        ),
        "no token": (httpx2.get(f"{daemon.url}/v1/models"), "invalid_api_key"),
    }
    for name, (response, code) in cases.items():
        error = response.json()["error"]
        assert error["code"] == code, (name, error)
        assert error["code"] not in TYPE_NAMES | {"invalid_request", "not_found"}, name
        assert error["type"] in TYPE_NAMES | {"insufficient_quota"}, (name, error)


def test_an_anthropic_upstream_error_type_is_not_an_openai_code(
    fake: FakeUpstream, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon(
        routed(("claude", "anthropic", fake.anthropic_base_url, "claude-haiku-4-5"))
    )
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=529))
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=529))
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=529))
    response = httpx2.post(f"{daemon.url}/v1/chat/completions", json=CHAT, headers=daemon.headers)
    error = response.json()["error"]
    assert response.status_code == 503, error
    assert error["code"] == "upstream_unavailable"  # not Anthropic's "overloaded_error"
    assert error["type"] == "server_error"


# --- a daemon without the vault's key ---


def test_a_replica_without_the_vault_key_answers_503_saying_how_to_provide_it(
    start_daemon: StartDaemon, tmp_path: Path, fake: FakeUpstream
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    first_replica = tmp_path / "first"
    first_replica.mkdir(mode=0o700)

    async def write_secret() -> None:
        store = await open_store(url)
        try:
            keys = KeyResolver(first_replica, environ={})
            vault = await Vault.open(store, keys)
            await vault.put("global/openai", KEY)
        finally:
            await store.aclose()

    asyncio.run(write_secret())
    config = PalyraConfig(
        storage=StorageConfig(url=url),
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="main",
            providers=[
                ProviderConfig(
                    id="vaulted",
                    kind="openai",
                    base_url=fake.openai_base_url,
                    api_key="vault:global/openai",
                ),
                ProviderConfig(id="profiled", kind="openai", base_url=fake.openai_base_url),
            ],
            models=[
                ModelConfig(id="main", provider="vaulted", model="gpt-4o-mini"),
                ModelConfig(id="other", provider="profiled", model="gpt-4o-mini"),
            ],
        ),
    )
    second_replica = tmp_path / "second"
    second_replica.mkdir(mode=0o700)
    state = AppState(config=config, state_dir=second_replica, environ={})
    daemon = start_daemon(state)
    for model in ("main", "other"):
        body = {"model": model, "messages": USER}
        response = httpx2.post(
            f"{daemon.url}/v1/chat/completions", json=body, headers=daemon.headers
        )
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "vault_unavailable"
        assert "could not open the vault: no vault master key found" in error["message"]
        assert "PALYRA_VAULT_KEY" in error["message"] and "same master key" in error["message"]
        assert "no profile store" not in error["message"]
    # Given the key, the same set-up serves.
    key_file = (first_replica / "vault.key").read_text().strip()
    environ = {"PALYRA_VAULT_KEY": key_file}
    served = start_daemon(AppState(config=config, state_dir=second_replica, environ=environ))
    ok = httpx2.post(f"{served.url}/v1/chat/completions", json=CHAT, headers=served.headers)
    assert ok.status_code == 200, ok.text
    assert base64.b64decode(key_file)  # the key file holds base64, as PALYRA_VAULT_KEY does
    assert os.stat(first_replica / "vault.key").st_mode & 0o077 == 0
