"""Anthropic's ``output_config`` (effort, structured outputs) through the daemon, with the
official SDKs against the fake upstream: as sent Anthropic -> Anthropic, read into the contract
for models of other APIs, and written by Palyra for OpenAI clients of a model whose config says
it takes it (``output_effort``, ``structured_outputs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.model import PalyraError
from palyra.providers.registry import build_provider
from palyra.testing import FakeUpstream

RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_OUTPUT_CONFIG_KEY"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
OUTPUT_CONFIG: dict[str, Any] = {
    "effort": "high",
    "format": {"type": "json_schema", "schema": SCHEMA},
}
MESSAGES: Any = [{"role": "user", "content": "tell me about Oslo"}]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, "sk-output-config")
    with FakeUpstream(api_keys={"sk-output-config"}) as upstream:
        yield upstream


def _daemon(start_daemon: StartDaemon, fake: FakeUpstream, kind: str, **options: Any) -> Any:
    base = fake.anthropic_base_url if kind == "anthropic" else fake.openai_base_url
    provider = ProviderConfig(id="up", kind=kind, base_url=base, api_key=f"env:{KEY_ENV}")
    upstream = {"anthropic": "claude-opus-4-5"}.get(kind, "gpt-5-mini")
    model = ModelConfig(
        id="default",
        provider="up",
        model=upstream,
        capabilities=["chat", "json"],
        **options,
    )
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(providers=[provider], models=[model])
    )
    return start_daemon(config)


def _claude(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_to_anthropic_output_config_travels_as_sent(
    start_daemon: StartDaemon, fake: FakeUpstream, stream: bool
) -> None:
    claude = _claude(_daemon(start_daemon, fake, "anthropic"))
    ask: dict[str, Any] = {
        "model": "default",
        "max_tokens": 256,
        "messages": MESSAGES,
        "output_config": OUTPUT_CONFIG,
    }
    if stream:
        with claude.messages.stream(**ask) as events:
            message = events.get_final_message()
    else:
        message = claude.messages.create(**ask)
    body = fake.requests[-1].body
    assert body["output_config"] == OUTPUT_CONFIG
    assert "thinking" not in body  # the effort is not turned into a thinking budget
    assert "system" not in body  # nor the format into an instruction
    text = message.content[0].text  # type: ignore[union-attr]
    assert set(orjson.loads(text)) == {"city", "population"}


def test_an_output_config_key_palyra_does_not_map_passes_to_anthropic_only(
    start_daemon: StartDaemon, fake: FakeUpstream
) -> None:
    config = {"effort": "low", "task_budget": {"tokens": 5000}}
    openai_backed = _claude(_daemon(start_daemon, fake, "openai"))
    with pytest.raises(anthropic.BadRequestError) as refused:
        openai_backed.messages.create(
            model="default", max_tokens=64, messages=MESSAGES, extra_body={"output_config": config}
        )
    assert "output_config" in refused.value.message
    assert not fake.requests


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_anthropic_output_config_reaches_an_openai_model_as_its_own_fields(
    start_daemon: StartDaemon, fake: FakeUpstream, api: str
) -> None:
    claude = _claude(_daemon(start_daemon, fake, "openai", api=api))
    message = claude.messages.create(
        model="default", max_tokens=256, messages=MESSAGES, output_config=OUTPUT_CONFIG
    )
    body = fake.requests[-1].body
    assert "output_config" not in body
    if api == "chat":
        assert body["reasoning_effort"] == "high"
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    else:
        assert body["reasoning"] == {"effort": "high"}
        assert body["text"]["format"]["type"] == "json_schema"
        assert body["text"]["format"]["schema"] == SCHEMA
    # (The Responses upstream reasons at that effort: its thinking block comes first.)
    [text] = [b.text for b in message.content if b.type == "text"]
    assert set(orjson.loads(text)) == {"city", "population"}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_clients_get_output_config_from_a_model_that_takes_it(
    start_daemon: StartDaemon, fake: FakeUpstream, stream: bool
) -> None:
    daemon = _daemon(start_daemon, fake, "anthropic", output_effort=True, structured_outputs=True)
    sdk: openai.OpenAI = daemon.openai_client()
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": SCHEMA, "strict": True},
    }
    ask: dict[str, Any] = {
        "model": "default",
        "messages": MESSAGES,
        "reasoning_effort": "minimal",
        "response_format": response_format,
    }
    if stream:
        text = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in sdk.chat.completions.create(**ask, stream=True)
            if chunk.choices
        )
    else:
        text = sdk.chat.completions.create(**ask).choices[0].message.content or ""
    body = fake.requests[-1].body
    assert body["output_config"] == {
        "effort": "low",  # OpenAI's minimal is Anthropic's lowest level
        "format": {"type": "json_schema", "schema": SCHEMA},
    }
    assert "thinking" not in body and "system" not in body
    assert set(orjson.loads(text)) == {"city", "population"}
    # The Responses surface too: text.format and reasoning.effort.
    daemon.openai_client().responses.create(
        model="default",
        input="tell me about Oslo",
        reasoning={"effort": "xhigh"},
        text={"format": {"type": "json_schema", "name": "City", "schema": SCHEMA}},
    )
    assert fake.requests[-1].body["output_config"] == {
        "effort": "xhigh",
        "format": {"type": "json_schema", "schema": SCHEMA},
    }


def test_without_the_options_an_effort_is_a_thinking_budget_and_a_schema_an_instruction(
    start_daemon: StartDaemon, fake: FakeUpstream
) -> None:
    sdk: openai.OpenAI = _daemon(start_daemon, fake, "anthropic").openai_client()
    sdk.chat.completions.create(
        model="default",
        messages=MESSAGES,
        max_completion_tokens=4096,
        reasoning_effort="low",
        response_format={"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA}},
    )
    body = fake.requests[-1].body
    assert "output_config" not in body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert '"population"' in body["system"]


def test_output_options_on_a_model_of_another_kind_are_a_config_error() -> None:
    provider = ProviderConfig(id="oa", kind="openai", base_url="https://api.openai.com/v1")
    model = ModelConfig(id="m", provider="oa", structured_outputs=True)
    with pytest.raises(PalyraError) as refused:
        build_provider(provider, None, models=[model])
    assert "structured_outputs" in refused.value.envelope.message
    assert '"oa" has kind "openai"' in refused.value.envelope.message
