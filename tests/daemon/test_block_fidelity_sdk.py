"""Content blocks and tools through a real daemon with the official SDKs: fields the contract does
not model on a block or a tool, and blocks and tools of types it does not model, reach an
upstream of the client's own API as sent; across APIs they are left out by rule, or refused
naming them where leaving them out would change the answer."""

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

KEY_ENV = "PALYRA_BLOCK_FIDELITY_KEY"
KEY = "sk-block-fidelity-upstream-key"
LOOKUP: Any = {
    "name": "lookup",
    "description": "Look a word up",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
    "input_examples": [{"word": "gateway"}],
    "defer_loading": False,
    "cache_control": {"type": "ephemeral", "ttl": "1h", "scope": "workspace"},
}
SEARCH_RESULT: Any = {
    "type": "search_result",
    "source": "https://example.com/doc",
    "title": "Doc",
    "content": [{"type": "text", "text": "Palyra is a gateway."}],
    "citations": {"enabled": True},
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
    caps: Any = ["chat", "tools", "vision"]
    models = [
        ModelConfig(id="gpt", provider="oa", model="gpt-4o-mini", capabilities=caps),
        ModelConfig(id="claude", provider="an", model="claude-haiku-4-5", capabilities=caps),
    ]
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="gpt", providers=providers, models=models
        )
    )
    return start_daemon(config)


def claude_client(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


def test_anthropic_block_and_tool_fields_reach_an_anthropic_upstream_as_sent(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    system: Any = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "persistent"}}]
    history: Any = [
        {"role": "user", "content": [SEARCH_RESULT, {"type": "text", "text": "What is it?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "text",
                    "text": "A gateway.",
                    "citations": [
                        {
                            "type": "search_result_location",
                            "source": "https://example.com/doc",
                            "title": "Doc",
                            "cited_text": "Palyra is a gateway.",
                            "search_result_index": 0,
                            "start_block_index": 0,
                            "end_block_index": 0,
                        }
                    ],
                }
            ],
        },
        {"role": "user", "content": "Say more."},
    ]
    answer = claude_client(daemon).messages.create(
        model="claude", max_tokens=64, system=system, tools=[LOOKUP], messages=history
    )
    sent = fake.requests[-1].body
    assert sent["system"] == system
    assert sent["tools"] == [LOOKUP]
    assert sent["messages"] == [
        {"role": "user", "content": history[0]["content"]},
        history[1],
        {"role": "user", "content": [{"type": "text", "text": "Say more."}]},
    ]
    assert answer.content[0].type == "text" and answer.stop_reason == "end_turn"


def test_anthropic_block_and_tool_fields_are_left_out_for_an_openai_upstream(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    answer = claude_client(daemon).messages.create(
        model="gpt",
        max_tokens=64,
        tools=[LOOKUP],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "x"}}],
            },
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "yo", "citations": [{"type": "x"}]}],
            },
            {"role": "user", "content": "again"},
        ],
    )
    sent = fake.requests[-1].body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": LOOKUP["input_schema"],
                "description": "Look a word up",
            },
        }
    ]
    assert sent["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "again"},
    ]
    assert answer.content[0].type == "text"


def test_a_block_or_tool_only_anthropic_reads_is_refused_for_an_openai_upstream(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    claude = claude_client(daemon)
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model="gpt",
            max_tokens=64,
            messages=[{"role": "user", "content": [SEARCH_RESULT]}],
        )
    assert "'search_result' from the anthropic_messages API" in info.value.message
    web_search: Any = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model="gpt",
            max_tokens=64,
            tools=[web_search],
            messages=[{"role": "user", "content": "q"}],
        )
    assert "'web_search' is a 'web_search_20250305' tool" in info.value.message
    assert fake.requests == []  # refused before any upstream call


def test_openai_part_and_tool_fields_reach_an_openai_upstream_as_sent(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    tool: Any = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {}},
            "strict": True,
            "x_examples": [{}],
        },
        "cache_control": {"type": "ephemeral"},
    }
    user: Any = [
        {"type": "text", "text": "Listen:", "cache_control": {"type": "ephemeral"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
    system: Any = [{"type": "text", "text": "Be brief."}]
    answer = daemon.openai_client().chat.completions.create(
        model="gpt",
        tools=[tool],
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
    )
    sent = fake.requests[-1].body
    assert sent["tools"] == [tool]
    assert sent["messages"] == [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ]
    assert answer.choices[0].message.content


def test_openai_part_fields_are_left_out_and_audio_refused_for_an_anthropic_upstream(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    client = daemon.openai_client()
    client.chat.completions.create(
        model="claude",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "hi", "x_hint": {"a": 1}}]},
        ],
    )
    assert fake.requests[-1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]
    audio: Any = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": [audio]}]
        )
    assert "'input_audio' from the openai_chat API" in info.value.message
    assert len(fake.requests) == 1


WEB_SEARCH: Any = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}


def _blocks(message: Any) -> list[dict[str, Any]]:
    return [b.model_dump(exclude_none=True) for b in message.content]


def test_server_tool_blocks_reach_an_anthropic_client_whole_and_streamed(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    claude = claude_client(daemon)
    ask: Any = {
        "model": "claude",
        "max_tokens": 256,
        "tools": [WEB_SEARCH],
        "messages": [{"role": "user", "content": "what is palyra"}],
    }
    whole = claude.messages.create(**ask)
    assert fake.requests[-1].body["tools"] == [WEB_SEARCH]
    assert [b.type for b in whole.content] == [
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    call, result, text = _blocks(whole)
    assert call["name"] == "web_search" and call["input"] == {"query": "what is palyra"}
    assert result["tool_use_id"] == call["id"]
    assert result["content"][0]["url"] == "https://example.com/palyra"
    assert text["text"] == "You said: what is palyra"
    assert text["citations"][0]["type"] == "web_search_result_location"
    assert whole.usage.server_tool_use is not None
    assert whole.usage.server_tool_use.web_search_requests == 1
    with claude.messages.stream(**ask) as stream:
        events = [e for e in stream if e.type.startswith("content_block")]
        streamed = stream.get_final_message()
    starts = [e for e in events if e.type == "content_block_start"]
    assert [(e.index, e.content_block.type) for e in starts] == [
        (0, "server_tool_use"),
        (1, "web_search_tool_result"),
        (2, "text"),
    ]
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert deltas[0] == "input_json_delta" and "citations_delta" in deltas
    s_call, s_result, s_text = _blocks(streamed)
    assert s_call == {**call, "id": s_call["id"]}
    assert s_result == {**result, "tool_use_id": s_call["id"]} | {
        "content": [
            {
                **result["content"][0],
                "encrypted_content": s_result["content"][0]["encrypted_content"],
            }
        ]
    }
    assert s_text == text
    assert streamed.usage.server_tool_use is not None
    assert streamed.usage.server_tool_use.web_search_requests == 1

    # The loop goes on: the client sends the blocks back, and they reach the upstream as sent.
    again = claude.messages.create(
        **{
            **ask,
            "messages": [
                *ask["messages"],
                {"role": "assistant", "content": _blocks(whole)},
                {"role": "user", "content": "thanks"},
            ],
        }
    )
    assert fake.requests[-1].body["messages"][1] == {"role": "assistant", "content": _blocks(whole)}
    assert again.content[-1].type == "text"


def test_a_kept_block_is_refused_for_a_responses_model_naming_it(
    fake: FakeUpstream, start_daemon: StartDaemon
) -> None:
    """A model served by the upstream's Responses API reads no block kept whole from another
    API: a 400 naming it, before any upstream call (not a failure of Palyra's)."""
    provider = ProviderConfig(
        id="oa", kind="openai", base_url=fake.openai_base_url, api_key=f"env:{KEY_ENV}"
    )
    model = ModelConfig(
        id="resp", provider="oa", model="gpt-5-mini", api="responses", capabilities=["chat"]
    )
    daemon = start_daemon(
        PalyraConfig(
            model_provider=ModelProviderRegistryConfig(
                default_chat_model="resp", providers=[provider], models=[model]
            )
        )
    )
    audio: Any = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as info:
        daemon.openai_client().chat.completions.create(
            model="resp", messages=[{"role": "user", "content": [audio]}]
        )
    assert "'input_audio' from the openai_chat API" in info.value.message
    with pytest.raises(openai.BadRequestError):
        daemon.openai_client().chat.completions.create(
            model="resp", messages=[{"role": "user", "content": [audio]}], stream=True
        )
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_client(daemon).messages.create(
            model="resp", max_tokens=16, messages=[{"role": "user", "content": [SEARCH_RESULT]}]
        )
    assert "'search_result' from the anthropic_messages API" in caught.value.message
    assert fake.requests == []
