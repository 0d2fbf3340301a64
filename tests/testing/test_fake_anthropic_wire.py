"""The fake's Anthropic endpoints, through plain httpx2 and through the official anthropic SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import orjson
import pytest

from palyra.testing import FakeUpstream

TOOL = {
    "name": "get_weather",
    "description": "weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(cached_tokens=2) as running:
        yield running


@pytest.fixture
def client(fake: FakeUpstream) -> anthropic.Anthropic:
    fake.clear()
    return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant", max_retries=0)


def _sse_events(fake: FakeUpstream, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    with httpx2.stream("POST", fake.base_url + "/v1/messages", json=body, headers=HEADERS) as r:
        assert r.status_code == 200
        text = r.read().decode()
    out = []
    for block in text.strip().split("\n\n"):
        event, data = block.split("\n")
        out.append((event.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_sdk_message_echoes_with_usage_split_into_cache_reads(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-test",
        max_tokens=100,
        system="be nice",
        messages=[{"role": "user", "content": "hello there friend"}],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "You said: hello there friend"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == 5
    assert message.usage.cache_read_input_tokens == 2
    assert message.usage.output_tokens == 5


def test_stream_has_the_exact_event_sequence(fake: FakeUpstream) -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 50,
        "stream": True,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "call get_weather please"}],
    }
    events = _sse_events(fake, body)
    names = [e for e, _ in events]
    assert names[0] == "message_start"
    assert names[1:3] == ["content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert all(e == d["type"] for e, d in events)
    deltas = [d["delta"] for e, d in events if e == "content_block_delta"]
    assert len(deltas) >= 2 and all(d["type"] == "input_json_delta" for d in deltas)
    assert orjson.loads("".join(d["partial_json"] for d in deltas)) == {"city": "please"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] == 2  # name + one JSON word


def test_text_stream_uses_text_deltas_then_stop(fake: FakeUpstream) -> None:
    body = {
        "model": "c",
        "max_tokens": 2,
        "stream": True,
        "messages": [{"role": "user", "content": "x y z"}],
    }
    events = _sse_events(fake, body)
    texts = [d["delta"]["text"] for e, d in events if e == "content_block_delta"]
    assert texts == ["You ", "said:"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_sdk_stream_helper_accumulates_a_streamed_tool_call(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-x",
        max_tokens=100,
        tools=[TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": 'call get_weather {"city": "Rome"}'}],
    ) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"city": "Rome"}
    assert final.stop_reason == "tool_use"


def test_sdk_text_stream_and_stop_sequence(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-x",
        max_tokens=100,
        stop_sequences=["world"],
        messages=[{"role": "user", "content": "hello world again"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: hello "
    assert final.stop_reason == "stop_sequence"
    assert final.stop_sequence == "world"


def test_tool_results_are_quoted_back(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="c",
        max_tokens=100,
        tools=[TOOL],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "call get_weather"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "rain",
                        "is_error": True,
                    }
                ],
            },
        ],
    )
    assert message.content[0].text == "Tool get_weather failed: rain"  # type: ignore[union-attr]


def test_count_tokens_matches_message_usage(client: anthropic.Anthropic) -> None:
    params: dict[str, Any] = {
        "model": "c",
        "system": [{"type": "text", "text": "two words"}],
        "messages": [{"role": "user", "content": "three more words"}],
    }
    counted = client.messages.count_tokens(**params)
    message = client.messages.create(max_tokens=10, **params)
    assert counted.input_tokens == 5
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == 5


def test_models_path_answers_in_anthropic_shape_with_version_header(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    assert [m.id for m in client.models.list()] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    r = httpx2.get(fake.base_url + "/v1/models", headers=HEADERS)
    assert r.json()["has_more"] is False
    assert r.json()["data"][0]["type"] == "model"
