"""Headers both ways through a real daemon with the official SDKs: vendor headers and
allowlisted ones reach the upstream, credentials and others never do, and the answer's
rate-limit and request-id headers come back, whole and streamed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from palyra.config import ConfigError, load_config
from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.testing import FakeUpstream

RunningDaemon = Any  # fixture types from tests/daemon/conftest.py
StartDaemon = Any

KEY_ENV = "PALYRA_HEADERS_SDK_KEY"
KEY = "sk-headers-sdk-upstream-key"
ASK = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


def config(fake: FakeUpstream, **openai_options: Any) -> PalyraConfig:
    key = f"env:{KEY_ENV}"
    providers = [
        ProviderConfig(
            id="oa",
            kind="openai",
            base_url=fake.openai_base_url,
            api_key=key,
            forward_headers=["X-Trace-Id"],
            **openai_options,
        ),
        ProviderConfig(id="an", kind="anthropic", base_url=fake.anthropic_base_url, api_key=key),
    ]
    models = [
        ModelConfig(id="gpt", provider="oa", model="gpt-4o-mini"),
        ModelConfig(id="claude", provider="an", model="claude-haiku-4-5"),
    ]
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="gpt", providers=providers, models=models
        )
    )


@pytest.fixture
def daemon(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(config(fake))


def claude_client(daemon: RunningDaemon, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=daemon.url, api_key=daemon.client_token, max_retries=0, default_headers=headers
    )


BETA = "prompt-caching-2024-07-31,token-efficient-tools-2025-02-19"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_anthropic_beta_reaches_an_anthropic_upstream_and_rate_limits_come_back(
    fake: FakeUpstream, daemon: RunningDaemon, stream: bool
) -> None:
    claude = claude_client(daemon, **{"anthropic-beta": BETA})
    raw = claude.messages.with_raw_response.create(
        model="claude",
        max_tokens=20,
        messages=ASK,
        stream=stream,  # type: ignore[arg-type]
    )
    if stream:
        list(raw.parse())  # type: ignore[call-overload]
    sent = fake.requests[-1].headers
    assert sent["anthropic-beta"] == BETA
    # The client's own version (the SDK's, not the configured 2023-06-01), as sent.
    assert sent["anthropic-version"] == claude.default_headers["anthropic-version"]
    assert sent["x-api-key"] == KEY and daemon.client_token not in str(sent)
    assert raw.headers["request-id"].startswith("req_fake")
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "10000"
    assert raw.headers["anthropic-ratelimit-tokens-remaining"] == "999000"


def test_a_client_anthropic_version_other_than_the_configured_one_reaches_the_upstream(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    claude = claude_client(daemon, **{"anthropic-version": "2024-10-22"})
    claude.messages.create(model="claude", max_tokens=20, messages=ASK)  # type: ignore[arg-type]
    assert fake.requests[-1].headers["anthropic-version"] == "2024-10-22"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_openai_headers_reach_an_openai_upstream_and_rate_limits_come_back(
    fake: FakeUpstream, daemon: RunningDaemon, stream: bool
) -> None:
    client = openai.OpenAI(
        base_url=f"{daemon.url}/v1",
        api_key=daemon.client_token,
        max_retries=0,
        organization="org-client",
        project="proj-client",
        default_headers={"OpenAI-Beta": "assistants=v2", "X-Trace-Id": "t-1", "X-Other": "no"},
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt",
        messages=ASK,
        stream=stream,  # type: ignore[arg-type]
    )
    if stream:
        list(raw.parse())  # type: ignore[call-overload]
    sent = fake.requests[-1].headers
    assert sent["openai-beta"] == "assistants=v2"
    assert (sent["openai-organization"], sent["openai-project"]) == ("org-client", "proj-client")
    assert sent["x-trace-id"] == "t-1"  # the provider's forward_headers allow it
    assert "x-other" not in sent
    assert sent["authorization"] == f"Bearer {KEY}"
    assert raw.headers["x-request-id"].startswith("req_fake")
    assert raw.headers["x-ratelimit-remaining-requests"].isdigit()
    # No rpm limit: nothing is counted, so the window is empty now.
    assert raw.headers["x-ratelimit-reset-requests"] == "0ms"


def test_a_configured_organization_and_project_win_over_the_clients(
    fake: FakeUpstream, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon(config(fake, organization="org-palyra", project="proj-palyra"))
    client = openai.OpenAI(
        base_url=f"{daemon.url}/v1",
        api_key=daemon.client_token,
        max_retries=0,
        organization="org-client",
    )
    client.chat.completions.create(model="gpt", messages=ASK)  # type: ignore[arg-type]
    sent = fake.requests[-1].headers
    assert (sent["openai-organization"], sent["openai-project"]) == ("org-palyra", "proj-palyra")


def test_vendor_headers_go_to_their_vendor_whatever_the_client_api(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    client = openai.OpenAI(
        base_url=f"{daemon.url}/v1",
        api_key=daemon.client_token,
        max_retries=0,
        default_headers={"anthropic-beta": BETA, "OpenAI-Beta": "x"},
    )
    client.chat.completions.create(model="claude", messages=ASK)  # type: ignore[arg-type]
    to_anthropic = fake.requests[-1].headers
    assert to_anthropic["anthropic-beta"] == BETA and "openai-beta" not in to_anthropic
    claude = claude_client(daemon, **{"anthropic-beta": BETA})
    claude.messages.create(model="gpt", max_tokens=20, messages=ASK)  # type: ignore[arg-type]
    to_openai = fake.requests[-1].headers
    assert "anthropic-beta" not in to_openai and "anthropic-version" not in to_openai


@pytest.mark.parametrize("name", ["Authorization", "x-api-key", "Cookie", "Connection", "Host"])
def test_credentials_and_hop_by_hop_headers_cannot_be_allowlisted(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "palyra.toml"
    path.write_text(
        '[[model_provider.providers]]\nid = "oa"\nkind = "openai"\n'
        f'forward_headers = ["{name}"]\n\n'
        '[[model_provider.models]]\nid = "default"\nprovider = "oa"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HOME": str(tmp_path)})
    text = "\n".join(str(p) for p in caught.value.problems)
    assert "forward_headers" in text and repr(name) in text and "palyra.toml:4" in text
