"""A Chat Completions client (the official ``openai`` SDK) served by an ``api = "responses"``
model: every option reaches the upstream's ``/v1/responses`` under its Responses name, or is
refused with a 400 naming it when the Responses API has no counterpart (README: Responses API,
"Upstream Responses API"). And the deterministic provider refuses what it cannot honour.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.testing import FakeUpstream

RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_CHAT_TO_RESPONSES_KEY"
MESSAGES: Any = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, "sk-chat-to-responses")
    with FakeUpstream(api_keys={"sk-chat-to-responses"}) as upstream:
        yield upstream


@pytest.fixture
def sdk(fake: FakeUpstream, start_daemon: StartDaemon) -> openai.OpenAI:
    provider = ProviderConfig(
        id="oa", kind="openai", base_url=fake.openai_base_url, api_key=f"env:{KEY_ENV}"
    )
    model = ModelConfig(
        id="default",
        provider="oa",
        model="gpt-5-mini",
        api="responses",
        capabilities=["chat", "tools"],
    )
    daemon = start_daemon(
        PalyraConfig(
            model_provider=ModelProviderRegistryConfig(providers=[provider], models=[model])
        )
    )
    return daemon.openai_client()  # type: ignore[no-any-return]


# (what the Chat Completions client sends, what the Responses upstream must receive)
MAPPED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "service_tier": ({"service_tier": "flex"}, {"service_tier": "flex"}),
    "top_logprobs": (
        {"logprobs": True, "top_logprobs": 2},
        {"top_logprobs": 2, "include": ["reasoning.encrypted_content", "message.output_text.logprobs"]},
    ),
    "logprobs": (
        {"logprobs": True},
        {"include": ["reasoning.encrypted_content", "message.output_text.logprobs"]},
    ),
    "metadata": ({"metadata": {"team": "infra"}}, {"metadata": {"team": "infra"}}),
    "user": ({"user": "user-42"}, {"user": "user-42"}),
    "store": ({"store": True}, {"store": True}),
    "parallel_tool_calls": ({"parallel_tool_calls": False}, {"parallel_tool_calls": False}),
    "max_completion_tokens": ({"max_completion_tokens": 64}, {"max_output_tokens": 64}),
    "reasoning_effort": ({"reasoning_effort": "low"}, {"reasoning": {"effort": "low"}}),
    "prompt_cache_key": (
        {"extra_body": {"prompt_cache_key": "tenant-7"}},
        {"prompt_cache_key": "tenant-7"},
    ),
    "safety_identifier": (
        {"extra_body": {"safety_identifier": "hash-1"}},
        {"safety_identifier": "hash-1"},
    ),
    "prompt_cache_retention": (
        {"extra_body": {"prompt_cache_retention": "24h"}},
        {"prompt_cache_retention": "24h"},
    ),
    "verbosity": ({"extra_body": {"verbosity": "low"}}, {"text": {"verbosity": "low"}}),
}  # fmt: skip
TOOL: Any = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
}


@pytest.mark.parametrize("name", sorted(MAPPED))
def test_each_chat_option_reaches_the_responses_upstream_under_its_name(
    sdk: openai.OpenAI, fake: FakeUpstream, name: str
) -> None:
    sent, expected = MAPPED[name]
    extra: dict[str, Any] = {"tools": [TOOL]} if name == "parallel_tool_calls" else {}
    answer = sdk.chat.completions.create(model="default", messages=MESSAGES, **sent, **extra)
    body = fake.requests[-1].body
    assert fake.requests[-1].path == "/v1/responses"
    assert {key: body.get(key) for key in expected} == expected
    assert answer.choices[0].message.content == "You said: hello there"
    if name in ("logprobs", "top_logprobs"):
        scored = answer.choices[0].logprobs
        assert scored is not None and scored.content is not None
        assert [t.token.strip() for t in scored.content] == ["You", "said:", "hello", "there"]
    if name == "service_tier":
        assert answer.service_tier == "flex"


def test_without_options_the_upstream_is_asked_not_to_store(
    sdk: openai.OpenAI, fake: FakeUpstream
) -> None:
    sdk.chat.completions.create(model="default", messages=MESSAGES)
    body = fake.requests[-1].body
    assert body["store"] is False
    for absent in ("service_tier", "metadata", "user", "top_logprobs", "text", "reasoning"):
        assert absent not in body


REFUSED: dict[str, dict[str, Any]] = {
    "seed": {"seed": 7},
    "presence_penalty": {"presence_penalty": 0.5},
    "frequency_penalty": {"frequency_penalty": 0.5},
    "logit_bias": {"logit_bias": {"42": 5}},
    "n": {"n": 2},
    "prediction": {"prediction": {"type": "content", "content": "hello"}},
    "stop": {"stop": ["END"]},
    "top_k": {"extra_body": {"top_k": 5}},
    "web_search_options": {"extra_body": {"web_search_options": {}}},
    "modalities": {"extra_body": {"modalities": ["text", "audio"]}},
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_each_chat_option_without_a_responses_counterpart_is_refused_naming_it(
    sdk: openai.OpenAI, fake: FakeUpstream, name: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="default", messages=MESSAGES, **REFUSED[name])
    assert refused.value.body["param"] == name  # type: ignore[index]
    assert name in refused.value.message
    assert not fake.requests  # refused before any upstream call


DETERMINISTIC_REFUSED: dict[str, dict[str, Any]] = {
    "logprobs": {"logprobs": True, "top_logprobs": 1},
    "n": {"n": 3},
    "logit_bias": {"logit_bias": {"42": 5}},
    "web_search_options": {"extra_body": {"web_search_options": {}}},
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", sorted(DETERMINISTIC_REFUSED))
def test_the_deterministic_provider_refuses_what_it_cannot_honour(
    client: openai.OpenAI, name: str, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="default", messages=MESSAGES, stream=stream, **DETERMINISTIC_REFUSED[name]
        )
    assert refused.value.body["param"] == name  # type: ignore[index]
    assert "deterministic provider" in refused.value.message


def test_the_deterministic_provider_drops_sampling_and_bookkeeping_by_rule(
    client: openai.OpenAI,
) -> None:
    answer = client.chat.completions.create(
        model="default",
        messages=MESSAGES,
        temperature=0.2,
        top_p=0.5,
        seed=1,
        presence_penalty=1,
        frequency_penalty=1,
        service_tier="flex",
        store=True,
        metadata={"a": "b"},
        user="u",
        n=1,
        logprobs=False,
    )
    assert answer.choices[0].message.content == "You said: hello there"
