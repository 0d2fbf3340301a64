"""Anthropic SDK -> daemon -> Anthropic upstream: thinking, cache markers, documents, top_k and
stop sequences reach the upstream as sent and come back as the upstream answered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.testing import FakeUpstream
from palyra.testing.anthropic_messages import sign_thinking

RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_FIDELITY_SDK_KEY"
KEY = "sk-fidelity-sdk-upstream-key"
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}
PDF = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDM+PgpzdHJlYW0KZW5kc3RyZWFtCmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"


def routed_config(kind: str, base_url: str, upstream_model: str) -> PalyraConfig:
    provider = ProviderConfig(id="up", kind=kind, base_url=base_url, api_key=f"env:{KEY_ENV}")
    model = ModelConfig(
        id="smart", provider="up", model=upstream_model, capabilities=["chat", "tools", "vision"]
    )
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="smart", providers=[provider], models=[model]
        )
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


@pytest.fixture
def claude(fake: FakeUpstream, start_daemon: StartDaemon) -> anthropic.Anthropic:
    daemon = start_daemon(routed_config("anthropic", fake.anthropic_base_url, "claude-sonnet-4-5"))
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


def _echo(block: Any) -> dict[str, Any]:
    """A response block as a client sends it back (the SDK's own dump of it)."""
    dumped: dict[str, Any] = block.model_dump(exclude_none=True)
    return dumped


def _second_turn(first: Any, question: str) -> list[dict[str, Any]]:
    call = next(b for b in first.content if b.type == "tool_use")
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": [_echo(b) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "4 C"}],
        },
    ]


def test_thinking_tool_loop_sends_the_thinking_block_back_byte_for_byte(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    question = "call get_weather for Oslo"
    first = claude.messages.create(
        model="smart",
        max_tokens=4096,
        thinking=THINKING,
        tools=[WEATHER],
        messages=[{"role": "user", "content": question}],
    )
    assert fake.requests[-1].body["thinking"] == THINKING
    answered = fake.requests[-1]
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    thinking = first.content[0]
    assert thinking.type == "thinking"
    assert thinking.signature == sign_thinking(thinking.thinking)
    second = claude.messages.create(
        model="smart",
        max_tokens=4096,
        thinking=THINKING,
        tools=[WEATHER],
        messages=_second_turn(first, question),  # type: ignore[arg-type]
    )
    sent = fake.requests[-1]
    assert sent is not answered
    assert sent.body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": thinking.thinking,
        "signature": thinking.signature,
    }
    assert f'"signature":"{thinking.signature}"'.encode() in sent.raw_body
    assert [b.type for b in second.content] == ["thinking", "text"]
    assert second.content[1].text == "Tool get_weather returned: 4 C"  # type: ignore[union-attr]


def test_streamed_thinking_tool_loop_sends_the_signature_back(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    question = "call get_weather for Oslo"
    request: Any = {
        "model": "smart",
        "max_tokens": 4096,
        "thinking": THINKING,
        "tools": [WEATHER],
    }
    with claude.messages.stream(**request, messages=[{"role": "user", "content": question}]) as s:
        kinds = [e.delta.type for e in s if e.type == "content_block_delta"]
        first = s.get_final_message()
    assert "thinking_delta" in kinds and "signature_delta" in kinds
    thinking = first.content[0]
    assert thinking.type == "thinking"
    assert thinking.signature == sign_thinking(thinking.thinking)
    with claude.messages.stream(**request, messages=_second_turn(first, question)) as s:
        second = s.get_final_message()
    assert fake.requests[-1].body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": thinking.thinking,
        "signature": thinking.signature,
    }
    assert second.content[-1].text == "Tool get_weather returned: 4 C"  # type: ignore[union-attr]


def test_a_tampered_signature_is_refused_by_the_upstream_not_repaired(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    question = "call get_weather for Oslo"
    first = claude.messages.create(
        model="smart",
        max_tokens=4096,
        thinking=THINKING,
        tools=[WEATHER],
        messages=[{"role": "user", "content": question}],
    )
    messages = _second_turn(first, question)
    messages[1]["content"][0]["thinking"] += " (edited)"
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        claude.messages.create(
            model="smart",
            max_tokens=4096,
            thinking=THINKING,
            tools=[WEATHER],
            messages=messages,  # type: ignore[arg-type]
        )


def test_cache_markers_reach_the_upstream_and_cache_usage_comes_back(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    system: Any = [
        {"type": "text", "text": "You answer weather questions."},
        {
            "type": "text",
            "text": "Long house rules " * 20,
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        },
    ]
    tool = {**WEATHER, "cache_control": {"type": "ephemeral"}}
    user: Any = [
        {"type": "text", "text": "context " * 10, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "What now?"},
    ]
    ask: Any = {
        "model": "smart",
        "max_tokens": 256,
        "system": system,
        "tools": [tool],
        "messages": [{"role": "user", "content": user}],
    }
    first = claude.messages.create(**ask)
    body = fake.requests[-1].body
    assert body["system"] == system
    assert body["tools"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][0]["content"] == user
    assert first.usage.cache_creation_input_tokens and first.usage.cache_creation_input_tokens > 0
    assert first.usage.cache_read_input_tokens == 0
    second = claude.messages.create(**ask)
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens
    with claude.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    assert streamed.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


def test_system_as_a_string_stays_a_string(fake: FakeUpstream, claude: anthropic.Anthropic) -> None:
    claude.messages.create(
        model="smart",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert fake.requests[-1].body["system"] == "Be brief."


@pytest.mark.parametrize(
    "block",
    [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            "title": "Report",
            "context": "Q3 board pack",
            "citations": {"enabled": True},
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Plain notes."},
            "title": "notes.txt",
        },
    ],
    ids=["base64-pdf", "url", "plain-text"],
)
def test_documents_reach_the_upstream_as_sent(
    fake: FakeUpstream, claude: anthropic.Anthropic, block: dict[str, Any]
) -> None:
    content: Any = [block, {"type": "text", "text": "Summarise it."}]
    answer = claude.messages.create(
        model="smart", max_tokens=64, messages=[{"role": "user", "content": content}]
    )
    assert fake.requests[-1].body["messages"][0]["content"] == content
    assert answer.content[0].text == "You said: Summarise it."  # type: ignore[union-attr]


def test_top_k_and_disabled_thinking_reach_the_upstream(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    claude.messages.create(
        model="smart",
        max_tokens=64,
        thinking={"type": "disabled"},
        extra_body={"top_k": 5},  # deprecated: this SDK no longer names it
        messages=[{"role": "user", "content": "hi"}],
    )
    body = fake.requests[-1].body
    assert (body["top_k"], body["thinking"]) == (5, {"type": "disabled"})


def test_the_stop_sequence_that_ended_the_answer_is_reported(
    fake: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    ask: Any = {
        "model": "smart",
        "max_tokens": 64,
        "stop_sequences": ["three", "two"],
        "messages": [{"role": "user", "content": "one two three"}],
    }
    whole = claude.messages.create(**ask)
    assert fake.requests[-1].body["stop_sequences"] == ["three", "two"]
    assert (whole.stop_reason, whole.stop_sequence) == ("stop_sequence", "two")
    assert whole.content[0].text == "You said: one "  # type: ignore[union-attr]
    with claude.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    assert (streamed.stop_reason, streamed.stop_sequence) == ("stop_sequence", "two")
