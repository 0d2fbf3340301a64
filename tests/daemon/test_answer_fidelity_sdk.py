"""OpenAI answers through a real daemon with the official SDKs: fields the contract does not
model (at the top, on a choice, on a message or delta), every choice of ``n > 1`` and the
reasoning fields of OpenAI-compatible servers reach an OpenAI client as the upstream sent them,
whole and streamed; an Anthropic client gets that reasoning as thinking blocks."""

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
from palyra.testing.anthropic_messages import sign_thinking

RunningDaemon = Any  # fixture types from tests/daemon/conftest.py
StartDaemon = Any

KEY_ENV = "PALYRA_ANSWER_FIDELITY_KEY"
KEY = "sk-answer-fidelity-upstream-key"
ASK: Any = [{"role": "user", "content": "four words in here"}]


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
        ProviderConfig(
            id="compat",
            kind="openai_compatible",
            base_url=fake.openai_base_url,
            api_key=key,
            allow_private_base_url=True,
        ),
        ProviderConfig(id="an", kind="anthropic", base_url=fake.anthropic_base_url, api_key=key),
    ]
    caps: Any = ["chat", "tools"]
    models = [
        ModelConfig(id="gpt", provider="oa", model="gpt-4o-mini", capabilities=caps),
        ModelConfig(id="local", provider="compat", model="gpt-4.1", capabilities=caps),
        ModelConfig(id="claude", provider="an", model="claude-haiku-4-5", capabilities=caps),
    ]
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="gpt", providers=providers, models=models
        )
    )
    return start_daemon(config)


def direct(fake: FakeUpstream) -> openai.OpenAI:
    """A client of the fake itself: what the upstream answers without Palyra."""
    return openai.OpenAI(base_url=fake.openai_base_url, api_key=KEY, max_retries=0)


def raw(client: openai.OpenAI, **ask: Any) -> dict[str, Any]:
    body: dict[str, Any] = client.chat.completions.with_raw_response.create(
        **ask
    ).http_response.json()
    return body


def streamed(client: openai.OpenAI, **ask: Any) -> list[dict[str, Any]]:
    with client.chat.completions.create(**ask, stream=True) as stream:
        return [chunk.model_dump(exclude_unset=True) for chunk in stream]


def test_unknown_answer_fields_reach_an_openai_client_whole(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    fake.settings.answer_extras = True
    upstream = raw(direct(fake), model="gpt-4o-mini", messages=ASK)
    got = raw(daemon.openai_client(), model="gpt", messages=ASK)
    assert got["prompt_filter_results"] == upstream["prompt_filter_results"]
    assert (
        got["choices"][0]["content_filter_results"]
        == upstream["choices"][0]["content_filter_results"]
    )
    assert got["choices"][0]["message"] == upstream["choices"][0]["message"]
    assert (got["system_fingerprint"], got["service_tier"]) == ("fp_palyra_fake", "default")


def test_unknown_chunk_fields_reach_an_openai_client_streamed_in_order(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    fake.settings.answer_extras = True
    ask: Any = {"messages": ASK, "stream_options": {"include_usage": True}}
    upstream = streamed(direct(fake), model="gpt-4o-mini", **ask)
    got = streamed(daemon.openai_client(), model="gpt", **ask)
    pads = [c["obfuscation"] for c in upstream]
    assert [c["obfuscation"] for c in got if "obfuscation" in c] == pads
    filters = [c["choices"][0].get("content_filter_results") for c in got if c["choices"]]
    assert {} in filters
    assert {c.get("system_fingerprint") for c in got} == {"fp_palyra_fake"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in got if c["choices"])
    assert text == "You said: four words in here"
    assert got[-1]["usage"]["completion_tokens"] == upstream[-1]["usage"]["completion_tokens"]


@pytest.mark.parametrize("model", ["gpt", "local"])
def test_every_choice_of_n_reaches_the_client_whole_and_streamed(
    fake: FakeUpstream, daemon: RunningDaemon, model: str
) -> None:
    client = daemon.openai_client()
    whole = client.chat.completions.create(model=model, messages=ASK, n=3)
    assert fake.requests[-1].body["n"] == 3
    assert [c.index for c in whole.choices] == [0, 1, 2]
    texts = [c.message.content for c in whole.choices]
    assert texts == [
        "You said: four words in here",
        "You said: four words in here (choice 1)",
        "You said: four words in here (choice 2)",
    ]
    upstream = raw(direct(fake), model="gpt-4.1", messages=ASK, n=3)
    assert whole.usage is not None
    assert whole.usage.completion_tokens == upstream["usage"]["completion_tokens"]
    chunks = streamed(
        client, model=model, messages=ASK, n=3, stream_options={"include_usage": True}
    )
    joined = ["", "", ""]
    finished: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            joined[choice["index"]] += choice["delta"].get("content") or ""
            if choice.get("finish_reason"):
                finished[choice["index"]] = choice["finish_reason"]
    assert joined == texts
    assert finished == {0: "stop", 1: "stop", 2: "stop"}
    assert chunks[-1]["usage"]["completion_tokens"] == upstream["usage"]["completion_tokens"]


def test_n_above_one_is_refused_for_an_anthropic_model(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        daemon.openai_client().chat.completions.create(model="claude", messages=ASK, n=2)
    assert info.value.body["param"] == "n"  # type: ignore[index]
    assert fake.requests == []


REASONING = "The user wrote 4 words; I answer plainly."
SIGNED = ("reasoning_details", "thinking_blocks")


@pytest.mark.parametrize(
    "field", ["reasoning_content", "reasoning", "reasoning_details", "thinking_blocks"]
)
def test_compatible_reasoning_reaches_an_openai_client_as_it_came(
    fake: FakeUpstream, daemon: RunningDaemon, field: str
) -> None:
    fake.settings.reasoning_content = True
    fake.settings.reasoning_field = field
    keys = {"reasoning_content", "reasoning", "reasoning_details", "thinking_blocks"}
    upstream = raw(direct(fake), model="gpt-4.1", messages=ASK)["choices"][0]["message"]
    got = raw(daemon.openai_client(), model="local", messages=ASK)["choices"][0]["message"]
    assert {k: v for k, v in got.items() if k in keys} == {
        k: v for k, v in upstream.items() if k in keys
    }
    direct_chunks = streamed(direct(fake), model="gpt-4.1", messages=ASK)
    chunks = streamed(daemon.openai_client(), model="local", messages=ASK)

    def reasoning(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
        deltas = [c["choices"][0]["delta"] for c in stream if c["choices"]]
        return [{k: v for k, v in d.items() if k in keys} for d in deltas if keys & d.keys()]

    assert reasoning(chunks) == reasoning(direct_chunks)


@pytest.mark.parametrize(
    "field", ["reasoning_content", "reasoning", "reasoning_details", "thinking_blocks"]
)
def test_compatible_reasoning_reaches_an_anthropic_client_as_thinking(
    fake: FakeUpstream, daemon: RunningDaemon, field: str
) -> None:
    fake.settings.reasoning_content = True
    fake.settings.reasoning_field = field
    claude = anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)
    signature = sign_thinking(REASONING) if field in SIGNED else ""
    whole = claude.messages.create(model="local", max_tokens=256, messages=ASK)
    thinking = whole.content[0]
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == (REASONING, signature)
    assert whole.content[1].type == "text"
    with claude.messages.stream(model="local", max_tokens=256, messages=ASK) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    first = final.content[0]
    assert first.type == "thinking"
    assert (first.thinking, first.signature) == (REASONING, signature)
    assert ("signature_delta" in kinds) is (field in SIGNED)
    assert [b.type for b in final.content] == ["thinking", "text"]


def test_the_usage_reaches_an_openai_client_as_the_upstream_counted_it(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    """Counts the contract does not model (audio tokens, predicted-output tokens) come back too,
    whole and in the streamed usage chunk; an Anthropic client gets the counts it has names for."""
    upstream = raw(direct(fake), model="gpt-4o-mini", messages=ASK)["usage"]
    assert upstream["completion_tokens_details"]["accepted_prediction_tokens"] == 0
    got = raw(daemon.openai_client(), model="gpt", messages=ASK)["usage"]
    assert got == upstream
    ask: Any = {"messages": ASK, "stream_options": {"include_usage": True}}
    streamed_usage = streamed(daemon.openai_client(), model="gpt", **ask)[-1]["usage"]
    assert streamed_usage == streamed(direct(fake), model="gpt-4o-mini", **ask)[-1]["usage"]
    claude = anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)
    usage = claude.messages.create(model="gpt", max_tokens=64, messages=ASK).usage
    assert usage.output_tokens == upstream["completion_tokens"]
    assert "accepted_prediction_tokens" not in str(usage.model_dump())
