"""Upstream error answers returned to a client keep the headers clients read (rate limits,
request id, ``retry-after``), through a real daemon with the official SDKs: a 4xx passed back,
and the last failure after failover, whole and streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.testing import FakeUpstream
from palyra.testing.faults import Fault, FaultKind

RunningDaemon = Any  # fixture types from tests/daemon/conftest.py
StartDaemon = Any

KEY_ENV = "PALYRA_ERROR_HEADERS_KEY"
KEY = "sk-error-headers-upstream-key"
ASK: Any = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}, rate_limit_rpm=50) as upstream:
        yield upstream


@pytest.fixture
def daemon(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    key = f"env:{KEY_ENV}"
    providers = [
        ProviderConfig(id="oa", kind="openai", base_url=fake.openai_base_url, api_key=key),
        ProviderConfig(id="an", kind="anthropic", base_url=fake.anthropic_base_url, api_key=key),
    ]
    models = [
        ModelConfig(id="gpt", provider="oa", model="gpt-4o-mini"),
        ModelConfig(id="claude", provider="an", model="claude-haiku-4-5"),
        ModelConfig(id="both", provider="oa", model="gpt-4.1", fallbacks=["claude"]),
    ]
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="gpt",
            providers=providers,
            models=models,
            max_retries=0,
            retry_backoff_ms=0,
        )
    )
    return start_daemon(config)


def claude_client(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


def test_a_4xx_passed_back_keeps_the_upstreams_headers(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    fake.faults.push(Fault(FaultKind.CONTEXT_LENGTH, path="/v1/chat/completions"))
    with pytest.raises(openai.BadRequestError) as info:
        daemon.openai_client().chat.completions.create(model="gpt", messages=ASK)
    headers = info.value.response.headers
    assert headers["x-request-id"].startswith("req_fakeerr")
    assert headers["x-ratelimit-limit-requests"] == "50"
    assert "x-ratelimit-remaining-requests" in headers
    fake.faults.push(Fault(FaultKind.CONTEXT_LENGTH, path="/v1/messages"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_client(daemon).messages.create(model="claude", max_tokens=16, messages=ASK)
    headers = caught.value.response.headers
    assert caught.value.request_id is not None
    assert caught.value.request_id.startswith("req_fakeerr")
    assert headers["anthropic-ratelimit-requests-limit"] == "50"


def test_a_rate_limit_passed_back_keeps_retry_after_and_the_limits_streamed_too(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    fake.faults.push(Fault(FaultKind.RATE_LIMIT, retry_after_s=7, path="/v1/chat/completions"))
    with pytest.raises(openai.RateLimitError) as info:
        daemon.openai_client().chat.completions.create(model="gpt", messages=ASK, stream=True)
    headers = info.value.response.headers
    assert headers["retry-after"] == "7"
    assert headers["x-ratelimit-limit-tokens"] == "1000000"
    assert headers["x-request-id"].startswith("req_fakeerr")


def test_the_last_failure_after_failover_keeps_its_upstreams_headers(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=503, path="/v1/chat/completions"))
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=529, path="/v1/messages"))
    with pytest.raises(openai.APIStatusError) as info:
        daemon.openai_client().chat.completions.create(model="both", messages=ASK)
    headers = info.value.response.headers
    assert "oa/gpt-4.1:upstream_unavailable" in headers["x-palyra-attempts"]
    assert "an/claude-haiku-4-5" in headers["x-palyra-attempts"]
    # The Anthropic upstream failed last: its headers are the ones that come back.
    assert headers["request-id"].startswith("req_fakeerr")
    assert headers["anthropic-ratelimit-requests-limit"] == "50"
    assert "x-ratelimit-limit-requests" not in headers
