"""Real SDK clients through a routed daemon to real fake upstreams that speak the other API.

OpenAI SDK -> Palyra -> Anthropic-speaking upstream, and Anthropic SDK -> Palyra -> OpenAI-
speaking upstream, each with tools, streaming (parsed by the SDKs' own accumulators) and a tool
call round trip.
"""

from __future__ import annotations

import json
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

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_ROUTED_SDK_KEY"
KEY = "sk-routed-sdk-upstream-key"
TOOL_CAPS = ["chat", "tools"]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


def routed_config(kind: str, base_url: str, upstream_model: str) -> PalyraConfig:
    provider = ProviderConfig(id="up", kind=kind, base_url=base_url, api_key=f"env:{KEY_ENV}")
    model = ModelConfig(
        id="smart", provider="up", model=upstream_model, capabilities=TOOL_CAPS, aliases=["s"]
    )
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="smart", providers=[provider], models=[model]
        )
    )


@pytest.fixture
def via_anthropic(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(routed_config("anthropic", fake.anthropic_base_url, "claude-haiku-4-5"))


@pytest.fixture
def via_openai(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(routed_config("openai", fake.openai_base_url, "gpt-4o-mini"))


def claude_client(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


def test_openai_sdk_tool_round_trip_reaches_an_anthropic_upstream(
    fake: FakeUpstream, via_anthropic: RunningDaemon
) -> None:
    client = via_anthropic.openai_client()
    tools = [{"type": "function", "function": WEATHER}]
    ask = [{"role": "user", "content": "please call get_weather for Oslo"}]
    raw = client.chat.completions.with_raw_response.create(model="s", messages=ask, tools=tools)
    first = raw.parse()
    assert raw.headers["x-palyra-model"] == "smart"
    assert raw.headers["x-palyra-attempts"] == "up/claude-haiku-4-5:ok"
    assert "x-palyra-overhead-ms" in raw.headers
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    upstream = fake.requests[-1]
    assert (upstream.path, upstream.body["model"]) == ("/v1/messages", "claude-haiku-4-5")
    assert upstream.headers["x-api-key"] == KEY
    assert upstream.body["tools"][0]["name"] == "get_weather"

    result = {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}
    follow = [*ask, first.choices[0].message.model_dump(exclude_none=True), result]
    second = client.chat.completions.create(model="smart", messages=follow, tools=tools)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "Tool get_weather returned: sunny, 21C"
    tool_result = fake.requests[-1].body["messages"][-1]["content"][0]
    assert (tool_result["type"], tool_result["tool_use_id"]) == ("tool_result", call.id)


def test_openai_sdk_stream_accumulator_parses_a_routed_anthropic_stream(
    via_anthropic: RunningDaemon,
) -> None:
    client = via_anthropic.openai_client()
    with client.chat.completions.stream(
        model="smart",
        messages=[{"role": "user", "content": "call get_weather now"}],
        tools=[{"type": "function", "function": WEATHER}],  # type: ignore[list-item]
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"]
    assert final.usage is not None and final.usage.completion_tokens > 0

    with client.chat.completions.stream(
        model="smart", messages=[{"role": "user", "content": "four words streamed back"}]
    ) as stream:
        text = stream.get_final_completion().choices[0].message.content
    assert text and "four words streamed back" in text


def test_anthropic_sdk_tool_round_trip_reaches_an_openai_upstream(
    fake: FakeUpstream, via_openai: RunningDaemon
) -> None:
    claude = claude_client(via_openai)
    tools = [
        {"name": "get_weather", "description": "Weather", "input_schema": WEATHER["parameters"]}
    ]
    ask = [{"role": "user", "content": "call get_weather for Lima"}]
    raw = claude.messages.with_raw_response.create(
        model="smart",
        max_tokens=200,
        messages=ask,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
    )
    first = raw.parse()
    assert raw.headers["x-palyra-attempts"] == "up/gpt-4o-mini:ok"
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather"
    upstream = fake.requests[-1]
    assert (upstream.path, upstream.body["model"]) == ("/v1/chat/completions", "gpt-4o-mini")
    assert upstream.headers["authorization"] == f"Bearer {KEY}"

    follow = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "foggy"}],
        },
    ]
    second = claude.messages.create(
        model="smart",
        max_tokens=200,
        messages=follow,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
    )
    assert second.content[0].text == "Tool get_weather returned: foggy"  # type: ignore[union-attr]
    sent = fake.requests[-1].body["messages"][-1]
    assert (sent["role"], sent["tool_call_id"]) == ("tool", use.id)


def test_anthropic_sdk_stream_accumulator_parses_a_routed_openai_stream(
    via_openai: RunningDaemon,
) -> None:
    claude = claude_client(via_openai)
    tools = [
        {"name": "get_weather", "description": "Weather", "input_schema": WEATHER["parameters"]}
    ]
    with claude.messages.stream(
        model="smart",
        max_tokens=200,
        messages=[{"role": "user", "content": "call get_weather please"}],
        tools=tools,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and use.input["city"]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens > 0

    with claude.messages.stream(
        model="s", max_tokens=200, messages=[{"role": "user", "content": "echo these words"}]
    ) as stream:
        message = stream.get_final_message()
    assert "echo these words" in message.content[0].text  # type: ignore[union-attr]
    assert message.model == "gpt-4o-mini"
