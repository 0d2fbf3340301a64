"""The request parameters through a real daemon with the official SDKs: what the fake upstream
received, and what the client got back, on same-format and cross-format routes."""

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

RunningDaemon = Any  # fixture types from tests/daemon/conftest.py
StartDaemon = Any

KEY_ENV = "PALYRA_PARAMS_SDK_KEY"
KEY = "sk-params-sdk-upstream-key"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


@pytest.fixture
def daemon(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    key = f"env:{KEY_ENV}"
    providers = [
        ProviderConfig(id="oa", kind="openai", base_url=fake.openai_base_url, api_key=key),
        ProviderConfig(id="an", kind="anthropic", base_url=fake.anthropic_base_url, api_key=key),
    ]
    caps: Any = ["chat", "tools"]
    models = [
        ModelConfig(id="gpt", provider="oa", model="gpt-4o-mini", capabilities=caps),
        ModelConfig(
            id="claude",
            provider="an",
            model="claude-haiku-4-5",
            capabilities=caps,
            reasoning_budgets={"high": 12000},
        ),
    ]
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="gpt", providers=providers, models=models
        )
    )
    return start_daemon(config)


def claude_client(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


def expected_logprob(token: str) -> float:
    """The fake upstream's log probability of a token (see testing/openai_chat.py)."""
    return -(len(token) % 7) / 10


ASK = [{"role": "user", "content": "three little words"}]
OPTIONS: dict[str, Any] = {
    "seed": 11,
    "presence_penalty": 0.25,
    "frequency_penalty": -0.5,
    "logit_bias": {"50256": -100},
    "service_tier": "flex",
    "store": True,
    "prediction": {"type": "content", "content": "three little words"},
    "metadata": {"team": "params"},
    "user": "user-7",
    "reasoning_effort": "low",
    "max_completion_tokens": 40,
    "stop": ["NEVER", "SEEN"],
    "n": 1,
}


def test_every_option_reaches_an_openai_upstream_and_logprobs_come_back(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    client = daemon.openai_client()
    answer = client.chat.completions.create(
        model="gpt", messages=ASK, logprobs=True, top_logprobs=2, **OPTIONS
    )
    sent = fake.requests[-1].body
    for key, value in OPTIONS.items():
        assert sent[key] == value, key
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    assert answer.service_tier == "flex"
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert "".join(t.token for t in logprobs.content) == answer.choices[0].message.content
    for token in logprobs.content:
        assert token.logprob == expected_logprob(token.token)
        assert token.bytes == list(token.token.encode())
        assert [t.token for t in token.top_logprobs] == [token.token, f"{token.token}~1"]


def test_streamed_logprobs_arrive_with_their_text(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    client = daemon.openai_client()
    stream = client.chat.completions.create(
        model="gpt",
        messages=ASK,
        logprobs=True,
        top_logprobs=1,
        service_tier="priority",
        stream=True,
    )
    text, tokens, tiers = "", [], set()
    for chunk in stream:
        tiers.add(chunk.service_tier)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None and choice.logprobs.content:
                tokens += [t.token for t in choice.logprobs.content]
    assert fake.requests[-1].body["logprobs"] is True
    assert text and "".join(tokens) == text
    assert tiers == {"priority"}


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("n", {"n": 2}),
        ("logprobs", {"logprobs": True, "top_logprobs": 1}),
        ("logit_bias", {"logit_bias": {"50256": -100}}),
    ],
)
def test_an_anthropic_model_refuses_what_it_cannot_honour_naming_the_field(
    fake: FakeUpstream, daemon: RunningDaemon, field: str, options: dict[str, Any]
) -> None:
    client = daemon.openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=ASK, **options)
    assert info.value.status_code == 400
    assert field in info.value.message
    assert fake.requests == []  # refused before anything left Palyra


def test_an_anthropic_model_gets_the_mapped_options_and_none_of_the_dropped_ones(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    client = daemon.openai_client()
    answer = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "call get_weather for Oslo"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
        parallel_tool_calls=False,
        seed=3,
        presence_penalty=1.0,
        frequency_penalty=1.0,
        store=True,
        prediction={"type": "content", "content": "x"},
        metadata={"team": "params"},
        user="user-7",
        service_tier="default",
        reasoning_effort="high",
        max_completion_tokens=16000,
        stop="NEVER",
    )
    sent = fake.requests[-1].body
    for dropped in ("seed", "presence_penalty", "frequency_penalty", "store", "prediction", "n"):
        assert dropped not in sent
    assert sent["metadata"] == {"user_id": "user-7"}
    assert sent["service_tier"] == "standard_only"
    # The model's own reasoning_budgets (high = 12000), not the default 16384.
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 12000}
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert (sent["max_tokens"], sent["stop_sequences"]) == (16000, ["NEVER"])
    assert answer.choices[0].message.tool_calls
    assert answer.service_tier == "default"  # Anthropic's "standard"


def test_anthropic_sdk_options_reach_an_openai_upstream_and_the_tier_comes_back(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    claude = claude_client(daemon)
    message = claude.messages.create(
        model="gpt",
        max_tokens=50,
        messages=ASK,  # type: ignore[arg-type]
        metadata={"user_id": "user-9"},
        service_tier="standard_only",
        stop_sequences=["NEVER"],
    )
    sent = fake.requests[-1].body
    assert (sent["user"], sent["service_tier"]) == ("user-9", "default")
    assert (sent["max_completion_tokens"], sent["stop"]) == (50, ["NEVER"])
    assert message.usage.service_tier == "standard"


def test_anthropic_sdk_options_reach_an_anthropic_upstream(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    claude = claude_client(daemon)
    with claude.messages.stream(
        model="claude",
        max_tokens=50,
        messages=ASK,  # type: ignore[arg-type]
        metadata={"user_id": "user-9"},
        service_tier="auto",
    ) as stream:
        message = stream.get_final_message()
    sent = fake.requests[-1].body
    assert (sent["metadata"], sent["service_tier"]) == ({"user_id": "user-9"}, "auto")
    assert message.usage.service_tier == "standard"


def test_fields_palyra_does_not_model_reach_an_upstream_of_the_same_api(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    client = daemon.openai_client()
    client.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": "hi", "x_vendor_note": {"a": 1}}],  # type: ignore[list-item]
        extra_body={"safety_identifier": "hashed-user", "prompt_cache_key": "k-1"},
    )
    sent = fake.requests[-1].body
    assert (sent["safety_identifier"], sent["prompt_cache_key"]) == ("hashed-user", "k-1")
    assert sent["messages"][-1]["x_vendor_note"] == {"a": 1}

    claude = claude_client(daemon)
    claude.messages.create(
        model="claude",
        max_tokens=20,
        messages=ASK,  # type: ignore[arg-type]
        extra_body={"context_management": {"edits": []}},
    )
    assert fake.requests[-1].body["context_management"] == {"edits": []}


def test_an_unknown_field_is_refused_by_a_model_of_the_other_api_naming_it(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    client = daemon.openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="claude",
            messages=ASK,
            extra_body={"safety_identifier": "h"},  # type: ignore[arg-type]
        )
    assert "safety_identifier" in info.value.message
    claude = claude_client(daemon)
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model="gpt",
            max_tokens=20,
            messages=ASK,  # type: ignore[arg-type]
            extra_body={"context_management": {"edits": []}},
        )
    assert "context_management" in caught.value.message
    assert fake.requests == []
