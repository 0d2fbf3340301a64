"""An upstream that echoes the key Palyra sent: the key reaches no client and no log line.

The keys have no recognisable shape (hex like an Azure key, bare base62), so only redaction of
the exact values the process holds can catch them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
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
)
from palyra.testing import FakeUpstream, Fault, FaultKind

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

OPENAI_KEY = "4f3c2a1b9e8d7c6b5a4f3e2d1c0b9a8f"  # Azure-style: 32 hex digits
ANTHROPIC_KEY = "Qw7rTz2LpX9vNc4MbK8sHj3GfD6aYe1U"  # no prefix, no key=, no Bearer
MESSAGES = [{"role": "user", "content": "one two three four five six"}]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv("PALYRA_ECHO_OPENAI_KEY", OPENAI_KEY)
    monkeypatch.setenv("PALYRA_ECHO_ANTHROPIC_KEY", ANTHROPIC_KEY)
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def daemon(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    providers = [
        ProviderConfig(
            id="oa",
            kind="openai",
            base_url=fake.openai_base_url,
            api_key="env:PALYRA_ECHO_OPENAI_KEY",
        ),
        ProviderConfig(
            id="an",
            kind="anthropic",
            base_url=fake.anthropic_base_url,
            api_key="env:PALYRA_ECHO_ANTHROPIC_KEY",
        ),
    ]
    models = [
        ModelConfig(id="gpt", provider="oa", model="gpt-4o-mini"),
        ModelConfig(id="claude", provider="an", model="claude-haiku-4-5"),
    ]
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="gpt", providers=providers, models=models, retry_backoff_ms=1
        )
    )
    return start_daemon(config)


def _assert_clean(seen: list[str], caplog: pytest.LogCaptureFixture) -> None:
    everything = "\n".join(seen) + caplog.text
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        assert key not in everything
        assert key[:16] not in everything and key[-16:] not in everything


def _sent_keys(fake: FakeUpstream) -> set[str]:
    return {
        r.headers.get("x-api-key") or r.headers["authorization"].removeprefix("Bearer ")
        for r in fake.requests
    }


def test_an_echoed_key_in_an_openai_error_reaches_neither_client_nor_log(
    fake: FakeUpstream, daemon: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = daemon.openai_client()
    seen: list[str] = []
    fake.faults.push(Fault(FaultKind.ECHO_KEY))
    with pytest.raises(openai.AuthenticationError) as whole:
        client.chat.completions.create(model="gpt", messages=MESSAGES)  # type: ignore[arg-type]
    seen += [str(whole.value), whole.value.response.text]
    assert "Incorrect API key provided: [REDACTED]" in whole.value.response.text

    fake.faults.push(Fault(FaultKind.ECHO_KEY, after_chunks=2))
    with pytest.raises(openai.APIError) as streamed:
        for chunk in client.chat.completions.create(
            model="gpt",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
        ):
            seen.append(chunk.model_dump_json())
    seen.append(str(streamed.value))
    assert "[REDACTED]" in str(streamed.value)

    fake.faults.push(Fault(FaultKind.ECHO_KEY, after_chunks=2))
    body = {"model": "gpt", "messages": MESSAGES, "stream": True}
    raw = httpx2.post(f"{daemon.url}/v1/chat/completions", json=body, headers=daemon.headers)
    seen.append(raw.text + repr(dict(raw.headers)))
    assert b"[REDACTED]" in raw.content

    assert _sent_keys(fake) == {OPENAI_KEY}  # the fake did receive (and echo) the real key
    _assert_clean(seen, caplog)


def test_an_echoed_key_on_the_anthropic_surface_reaches_neither_client_nor_log(
    fake: FakeUpstream, daemon: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    claude = anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)
    seen: list[str] = []
    fake.faults.push(Fault(FaultKind.ECHO_KEY))
    with pytest.raises(anthropic.AuthenticationError) as whole:
        claude.messages.create(model="claude", max_tokens=50, messages=MESSAGES)  # type: ignore[arg-type]
    seen += [str(whole.value), whole.value.response.text]
    assert "[REDACTED]" in whole.value.response.text

    for after in (0, 2):
        fake.faults.push(Fault(FaultKind.ECHO_KEY, after_chunks=after))
        with (
            pytest.raises(anthropic.APIError) as streamed,
            claude.messages.stream(
                model="claude",
                max_tokens=50,
                messages=MESSAGES,  # type: ignore[arg-type]
            ) as stream,
        ):
            for event in stream:
                seen.append(event.model_dump_json())
        seen.append(str(streamed.value))
        assert "[REDACTED]" in str(streamed.value)

    # The OpenAI surface routed to the Anthropic provider: the other translation path.
    fake.faults.push(Fault(FaultKind.ECHO_KEY, after_chunks=1))
    body = {"model": "claude", "messages": MESSAGES, "stream": True}
    raw = httpx2.post(f"{daemon.url}/v1/chat/completions", json=body, headers=daemon.headers)
    seen.append(raw.text)
    assert b"[REDACTED]" in raw.content

    assert _sent_keys(fake) == {ANTHROPIC_KEY}
    _assert_clean(seen, caplog)
