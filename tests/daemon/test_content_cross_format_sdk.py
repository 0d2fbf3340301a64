"""Content across formats, one test per row of the README's field table that this file names:
what the upstream of the other API received, and what the client got back (official SDKs)."""

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

RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_CROSS_CONTENT_KEY"
KEY = "sk-cross-content-upstream-key"
PDF = "JVBERi0xLjQKJSVFT0YK"
PDF_URL = f"data:application/pdf;base64,{PDF}"


def config(kind: str, base_url: str, upstream_model: str) -> PalyraConfig:
    provider = ProviderConfig(id="up", kind=kind, base_url=base_url, api_key=f"env:{KEY_ENV}")
    model = ModelConfig(
        id="m", provider="up", model=upstream_model, capabilities=["chat", "tools", "vision"]
    )
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="m", providers=[provider], models=[model]
        )
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


@pytest.fixture
def to_anthropic(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(config("anthropic", fake.anthropic_base_url, "claude-sonnet-4-5"))


@pytest.fixture
def to_openai(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(config("openai", fake.openai_base_url, "gpt-4o-mini"))


@pytest.fixture
def to_compatible(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(config("openai_compatible", fake.openai_base_url, "gpt-4o-mini"))


def claude(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


def gpt(daemon: RunningDaemon) -> openai.OpenAI:
    client: openai.OpenAI = daemon.openai_client()
    return client


def no_key_anywhere(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key not in value and all(no_key_anywhere(v, key) for v in value.values())
    if isinstance(value, list):
        return all(no_key_anywhere(v, key) for v in value)
    return True


# --- stop_sequence -------------------------------------------------------------------------


def test_stop_sequence_openai_client_anthropic_model_is_finish_reason_stop(
    fake: FakeUpstream, to_anthropic: RunningDaemon
) -> None:
    answer = gpt(to_anthropic).chat.completions.create(
        model="m", stop=["two"], messages=[{"role": "user", "content": "one two three"}]
    )
    assert fake.requests[-1].body["stop_sequences"] == ["two"]
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "You said: one "


def test_stop_sequence_anthropic_client_openai_model_is_end_turn_without_a_sequence(
    fake: FakeUpstream, to_openai: RunningDaemon
) -> None:
    answer = claude(to_openai).messages.create(
        model="m",
        max_tokens=64,
        stop_sequences=["two"],
        messages=[{"role": "user", "content": "one two three"}],
    )
    assert fake.requests[-1].body["stop"] == ["two"]
    assert (answer.stop_reason, answer.stop_sequence) == ("end_turn", None)
    assert answer.content[0].text == "You said: one "  # type: ignore[union-attr]


# --- cache markers -------------------------------------------------------------------------


def test_cache_markers_anthropic_client_openai_model_are_dropped_and_cached_usage_maps(
    fake: FakeUpstream, to_openai: RunningDaemon
) -> None:
    fake.settings.cached_tokens = 3
    marker: Any = {"type": "ephemeral", "ttl": "1h"}
    answer = claude(to_openai).messages.create(
        model="m",
        max_tokens=64,
        system=[
            {"type": "text", "text": "Rule one."},
            {"type": "text", "text": "Rule two.", "cache_control": marker},
        ],
        tools=[
            {"name": "f", "input_schema": {"type": "object"}, "cache_control": marker},
        ],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": marker}]}
        ],
    )
    body = fake.requests[-1].body
    assert no_key_anywhere(body, "cache_control")
    assert body["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}],
    }
    assert answer.usage.cache_read_input_tokens == 3


# --- reasoning ----------------------------------------------------------------------------


def test_reasoning_from_an_openai_compatible_model_is_an_unsigned_thinking_block(
    fake: FakeUpstream, to_compatible: RunningDaemon
) -> None:
    fake.settings.reasoning_content = True
    client = claude(to_compatible)
    ask: Any = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    whole = client.messages.create(**ask)
    assert [b.type for b in whole.content] == ["thinking", "text"]
    thinking = whole.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking == "The user wrote 1 words; I answer plainly."
    assert thinking.signature == ""
    with client.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0] == thinking


def test_thinking_in_history_anthropic_client_openai_model_is_dropped(
    fake: FakeUpstream, to_openai: RunningDaemon
) -> None:
    claude(to_openai).messages.create(
        model="m",
        max_tokens=64,
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "c2ln"},
                    {"type": "redacted_thinking", "data": "b3BhcXVl"},
                    {"type": "text", "text": "Hello."},
                ],
            },
            {"role": "user", "content": "again"},
        ],
    )
    assert fake.requests[-1].body["messages"][1] == {"role": "assistant", "content": "Hello."}


def test_thinking_blocks_openai_client_anthropic_model_go_back_signed(
    fake: FakeUpstream, to_anthropic: RunningDaemon
) -> None:
    """An OpenAI client echoing ``thinking_blocks`` (the extension field) keeps the signature;
    bare ``reasoning_content`` has none and is left out, as Anthropic refuses unsigned thinking."""
    gpt(to_anthropic).chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "Hello.",
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "hm", "signature": sign_thinking("hm")}
                ],
            },  # type: ignore[misc]
            {"role": "assistant", "content": "More.", "reasoning_content": "unsigned"},  # type: ignore[misc]
            {"role": "user", "content": "again"},
        ],
    )
    sent = fake.requests[-1].body["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": sign_thinking("hm")},
            {"type": "text", "text": "Hello."},
            {"type": "text", "text": "More."},
        ],
    }


# --- documents ----------------------------------------------------------------------------


def test_openai_file_part_reaches_an_anthropic_model_as_a_document(
    fake: FakeUpstream, to_anthropic: RunningDaemon
) -> None:
    content: Any = [
        {"type": "file", "file": {"file_data": PDF_URL, "filename": "report.pdf"}},
        {"type": "text", "text": "Summarise it."},
    ]
    answer = gpt(to_anthropic).chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}]
    )
    assert fake.requests[-1].body["messages"][0]["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        "title": "report.pdf",
    }
    assert answer.choices[0].message.content == "You said: Summarise it."


def test_openai_file_id_to_an_anthropic_model_is_refused_naming_it(
    fake: FakeUpstream, to_anthropic: RunningDaemon
) -> None:
    content: Any = [{"type": "file", "file": {"file_id": "file-abc123"}}]
    with pytest.raises(openai.BadRequestError, match="file-abc123") as caught:
        gpt(to_anthropic).chat.completions.create(
            model="m", messages=[{"role": "user", "content": content}]
        )
    assert "OpenAI file id" in str(caught.value)
    assert not fake.requests


def test_anthropic_documents_reach_an_openai_model_as_file_and_text_parts(
    fake: FakeUpstream, to_openai: RunningDaemon
) -> None:
    content: Any = [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            "title": "Report",
            "citations": {"enabled": True},
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Plain notes."},
            "title": "notes.txt",
        },
        {"type": "text", "text": "Summarise them."},
    ]
    answer = claude(to_openai).messages.create(
        model="m", max_tokens=64, messages=[{"role": "user", "content": content}]
    )
    assert fake.requests[-1].body["messages"][0]["content"] == [
        {"type": "file", "file": {"filename": "Report", "file_data": PDF_URL}},
        {"type": "text", "text": "notes.txt\n\nPlain notes."},
        {"type": "text", "text": "Summarise them."},
    ]
    said = answer.content[0].text  # type: ignore[union-attr]
    assert said == "You said: notes.txt\n\nPlain notes. Summarise them."


def test_anthropic_document_by_url_to_an_openai_model_is_refused_naming_it(
    fake: FakeUpstream, to_openai: RunningDaemon
) -> None:
    content: Any = [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    ]
    with pytest.raises(anthropic.BadRequestError, match=r"https://example\.com/a\.pdf"):
        claude(to_openai).messages.create(
            model="m", max_tokens=64, messages=[{"role": "user", "content": content}]
        )
    assert not fake.requests


def test_openai_file_parts_reach_an_openai_model_as_sent(
    fake: FakeUpstream, to_openai: RunningDaemon
) -> None:
    content: Any = [
        {"type": "file", "file": {"filename": "report.pdf", "file_data": PDF_URL}},
        {"type": "file", "file": {"file_id": "file-abc123"}},
        {"type": "text", "text": "Summarise them."},
    ]
    gpt(to_openai).chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}]
    )
    assert fake.requests[-1].body["messages"][0]["content"] == content


# --- top_k --------------------------------------------------------------------------------


def test_top_k_anthropic_client_openai_model_is_refused_naming_it(
    fake: FakeUpstream, to_openai: RunningDaemon
) -> None:
    with pytest.raises(anthropic.BadRequestError, match="top_k") as caught:
        claude(to_openai).messages.create(
            model="m",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"top_k": 5},
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert not fake.requests


def test_top_k_openai_client_reaches_an_anthropic_model(
    fake: FakeUpstream, to_anthropic: RunningDaemon
) -> None:
    gpt(to_anthropic).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 5}
    )
    assert fake.requests[-1].body["top_k"] == 5


def test_top_k_reaches_an_openai_compatible_server(
    fake: FakeUpstream, to_compatible: RunningDaemon
) -> None:
    gpt(to_compatible).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 5}
    )
    assert fake.requests[-1].body["top_k"] == 5


def test_reasoning_content_from_an_openai_compatible_model_reaches_an_openai_client(
    fake: FakeUpstream, to_compatible: RunningDaemon
) -> None:
    fake.settings.reasoning_content = True
    client = gpt(to_compatible)
    whole = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    message = whole.choices[0].message
    thought = "The user wrote 1 words; I answer plainly."
    # As the server sent it: its own field, and no thinking_blocks it did not send.
    assert message.model_extra == {"reasoning_content": thought}
    assert message.content == "You said: hi"
    chunks = list(
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    streamed = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "")
        for c in chunks
        if c.choices
    )
    assert streamed == thought


WEATHER_FN: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _echo_assistant(message: Any) -> dict[str, Any]:
    """The assistant message as an OpenAI client sends it back, extension fields included."""
    echoed: dict[str, Any] = message.model_dump(exclude_none=True)
    return echoed


def test_openai_client_thinking_tool_loop_with_an_anthropic_model_keeps_the_signature(
    fake: FakeUpstream, to_anthropic: RunningDaemon
) -> None:
    client = gpt(to_anthropic)
    question: Any = {"role": "user", "content": "call get_weather for Oslo"}
    ask: Any = {"model": "m", "reasoning_effort": "low", "tools": [WEATHER_FN]}
    first = client.chat.completions.create(**ask, messages=[question])
    message = first.choices[0].message
    extra = message.model_extra or {}
    [block] = extra["thinking_blocks"]
    assert block["signature"] == sign_thinking(block["thinking"])
    assert extra["reasoning_content"] == block["thinking"]
    call = message.tool_calls[0]  # type: ignore[index]
    result: Any = {"role": "tool", "tool_call_id": call.id, "content": "4 C"}
    second = client.chat.completions.create(
        **ask, messages=[question, _echo_assistant(message), result]
    )
    assert fake.requests[-1].body["messages"][1]["content"][0] == block
    assert second.choices[0].message.content == "Tool get_weather returned: 4 C"


def test_openai_client_streamed_thinking_gives_the_signed_block(
    fake: FakeUpstream, to_anthropic: RunningDaemon
) -> None:
    chunks = list(
        gpt(to_anthropic).chat.completions.create(
            model="m",
            reasoning_effort="low",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
    )
    extras = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    text = "".join(e.get("reasoning_content", "") for e in extras)
    blocks = [b for e in extras for b in e.get("thinking_blocks", [])]
    assert blocks == [{"type": "thinking", "thinking": text, "signature": sign_thinking(text)}]
    assert fake.requests[-1].body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
