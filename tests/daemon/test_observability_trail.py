"""What the daemon shows about a request and its upstreams: candidates skipped for an open
breaker in ``x-palyra-attempts``, the requested model in the access line of a failed request,
health times on the wall clock, and a token that can read ``/metrics`` and nothing else."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from typer.testing import CliRunner

from palyra.cli.main import app
from palyra.config.schema import (
    BreakerConfig,
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    default_config,
)
from palyra.daemon import AppState
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore, generate_token
from palyra.store import open_store
from palyra.testing import FakeUpstream

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_TRAIL_KEY"
KEY = "sk-trail-upstream-key-0123456789abcdef"
CHAT = {"model": "main", "messages": [{"role": "user", "content": "one two three"}]}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def breaking(fake: FakeUpstream, *, fallback: bool) -> PalyraConfig:
    """``main`` on a dead upstream whose breaker opens at the first failure, falling back (when
    asked) to ``alt`` on the fake upstream."""
    providers = [
        ProviderConfig(id="dead", kind="openai", base_url=dead_url(), api_key=f"env:{KEY_ENV}"),
        ProviderConfig(
            id="live", kind="openai", base_url=fake.openai_base_url, api_key=f"env:{KEY_ENV}"
        ),
    ]
    models = [
        ModelConfig(
            id="main", provider="dead", model="gpt-4o-mini", fallbacks=["alt"] if fallback else []
        ),
        ModelConfig(id="alt", provider="live", model="gpt-4o-mini"),
    ]
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="main",
            providers=providers,
            models=models,
            max_retries=0,
            breaker=BreakerConfig(consecutive_failures=1),
        )
    )


def post(daemon: RunningDaemon, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(f"{daemon.url}/v1/chat/completions", json=body, headers=daemon.headers)


def test_a_candidate_skipped_for_its_open_breaker_shows_in_the_attempts_header(
    fake: FakeUpstream, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon(breaking(fake, fallback=True))
    first = post(daemon, CHAT)
    assert first.headers["x-palyra-attempts"] == "dead/gpt-4o-mini:connection,live/gpt-4o-mini:ok"
    second = post(daemon, CHAT)
    assert second.status_code == 200
    assert second.headers["x-palyra-attempts"] == (
        "dead/gpt-4o-mini:circuit_open,live/gpt-4o-mini:ok"
    )
    with httpx2.stream(
        "POST",
        f"{daemon.url}/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers=daemon.headers,
    ) as streamed:
        streamed.read()
    assert streamed.headers["x-palyra-attempts"] == (
        "dead/gpt-4o-mini:circuit_open,live/gpt-4o-mini:ok"
    )


def test_the_circuit_open_503_carries_the_attempts_header(
    fake: FakeUpstream, start_daemon: StartDaemon, access_lines: io.StringIO
) -> None:
    daemon = start_daemon(breaking(fake, fallback=False))
    assert post(daemon, CHAT).status_code == 502  # the failure that opens the breaker
    client = daemon.openai_client()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.status_code == 503 and info.value.code == "circuit_open"
    assert info.value.response.headers["x-palyra-attempts"] == "dead/gpt-4o-mini:circuit_open"
    lines = [json.loads(line) for line in access_lines.getvalue().splitlines()]
    assert lines[-1]["status"] == 503 and lines[-1]["attempts"] == "dead/gpt-4o-mini:circuit_open"


def test_a_failed_request_logs_the_model_it_asked_for(
    daemon: RunningDaemon, access_lines: io.StringIO
) -> None:
    unknown = post(daemon, {"model": "no-such-model", "messages": CHAT["messages"]})
    assert unknown.status_code == 404
    odd = post(daemon, {"model": "evil\nmodel=forged " + "x" * 300, "messages": []})
    assert odd.status_code == 400
    messages = httpx2.post(
        f"{daemon.url}/v1/messages",
        json={"model": "claude-nope", "max_tokens": 5, "messages": CHAT["messages"]},
        headers=daemon.headers,
    )
    assert messages.status_code == 404
    served = post(daemon, {"model": "default", "messages": CHAT["messages"]})
    assert served.status_code == 200
    lines = [json.loads(line) for line in access_lines.getvalue().splitlines()]
    models = [line["model"] for line in lines]
    assert models[0] == "no-such-model"
    assert models[1] is None  # refused before the model was read: nothing is guessed
    assert models[2:] == ["claude-nope", "default"]


def test_a_routed_failure_logs_the_requested_model(
    fake: FakeUpstream, start_daemon: StartDaemon, access_lines: io.StringIO
) -> None:
    daemon = start_daemon(breaking(fake, fallback=False))
    assert post(daemon, CHAT).status_code == 502
    [line] = [json.loads(line) for line in access_lines.getvalue().splitlines()]
    assert line["model"] == "main" and line["attempts"] == "dead/gpt-4o-mini:connection"


def test_a_requested_model_reaches_the_text_log_escaped_and_cut(daemon: RunningDaemon) -> None:
    from palyra.daemon.observe.exchange import _requested_model

    assert _requested_model({"requested_model": "a\nb\x1b"}, None) == "a\\nb\\x1b"
    assert _requested_model({"requested_model": "m" * 500}, None) == "m" * 128
    assert _requested_model({}, None) is None


def test_provider_health_times_are_wall_clock_iso_8601_utc(
    fake: FakeUpstream, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon(breaking(fake, fallback=True))
    before = datetime.now(UTC)
    assert post(daemon, CHAT).status_code == 200
    after = datetime.now(UTC)
    health = httpx2.get(
        f"{daemon.url}/console/v1/providers/health", headers=daemon.admin_headers
    ).json()
    rows = {row["scope"]: row for row in health["models"]}
    success = rows["target:live/alt"]["last_success_at"]
    failure = rows["target:dead/main"]["last_failure_at"]
    for stamp in (success, failure):
        assert isinstance(stamp, str) and stamp.endswith("Z"), stamp
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")
        assert before.replace(microsecond=0) <= moment <= after, (stamp, before, after)
    assert rows["target:dead/main"]["last_success_at"] is None


def _store_token(url: str, kind: TokenKind) -> str:
    async def create() -> str:
        store = await open_store(url, migrations=(TOKENS_SCHEMA,))
        try:
            token, _ = await TokenStore(store).create(kind, name="scraper")
        finally:
            await store.aclose()
        return token

    return asyncio.run(create())


def test_a_metrics_token_reads_metrics_and_nothing_else(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tokens.db'}"
    scraper = _store_token(url, TokenKind.METRICS)
    assert scraper.startswith("plm_")
    client = generate_token(TokenKind.CLIENT)
    auth = Authenticator(store_url=url, fixed_tokens={client: TokenKind.CLIENT})
    daemon = start_daemon(AppState.from_config(default_config()), auth=auth)
    bearer = {"authorization": f"Bearer {scraper}"}
    metrics = httpx2.get(f"{daemon.url}/metrics", headers=bearer)
    assert metrics.status_code == 200 and "palyra_requests_total" in metrics.text
    chat = {"model": "default", "messages": CHAT["messages"]}
    refused = [
        httpx2.get(f"{daemon.url}/v1/models", headers=bearer),
        httpx2.post(f"{daemon.url}/v1/chat/completions", json=chat, headers=bearer),
        httpx2.post(
            f"{daemon.url}/v1/messages",
            json={**chat, "max_tokens": 5},
            headers={"x-api-key": scraper},
        ),
        httpx2.get(f"{daemon.url}/console/v1/whoami", headers=bearer),
        httpx2.get(f"{daemon.url}/console/v1/tokens", headers=bearer),
    ]
    assert [r.status_code for r in refused] == [401] * 5
    # Client tokens still read /metrics, as before.
    as_client = httpx2.get(f"{daemon.url}/metrics", headers={"authorization": f"Bearer {client}"})
    assert as_client.status_code == 200
    nothing = httpx2.get(f"{daemon.url}/metrics").json()["error"]["message"]
    assert "needs a metrics, client or admin token" in nothing
    assert "palyra token create --metrics" in nothing


def test_token_create_metrics_on_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    made = CliRunner().invoke(app, ["token", "create", "--metrics", "--name", "prometheus"])
    assert made.exit_code == 0, made.stderr
    assert made.stdout.strip().startswith("plm_")
    assert "created metrics token" in made.stderr
    listed = CliRunner().invoke(app, ["token", "list", "--json"])
    assert [(r["kind"], r["name"]) for r in json.loads(listed.stdout)] == [
        ("metrics", "prometheus")
    ]
    both = CliRunner().invoke(app, ["token", "create", "--metrics", "--admin"])
    assert both.exit_code == 1 and "not both" in both.stderr
