"""Anthropic's cache writes by lifetime (``usage.cache_creation``) through the daemon.

An Anthropic client gets the upstream's ``ephemeral_5m_input_tokens`` /
``ephemeral_1h_input_tokens`` back exactly, whole and streamed (``message_start``), read into the
contract's ``Usage.cache_creation_5m_input_tokens`` / ``cache_creation_1h_input_tokens``; an
OpenAI client of the same answer gets both writes inside ``prompt_tokens`` / ``input_tokens``.
"""

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
from palyra.daemon.surfaces.anthropic.messages_format import message_usage_json
from palyra.daemon.surfaces.openai.chat_format import usage_json as chat_usage_json
from palyra.daemon.surfaces.responses.response_format import usage_json as responses_usage_json
from palyra.model import Usage
from palyra.providers.anthropic.response import usage_from_anthropic
from palyra.testing import FakeUpstream
from palyra.testing.anthropic_messages import cache_prefix

RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_CACHE_SPLIT_KEY"
LONG = "You answer questions about the Palyra gateway. " * 30


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, "sk-cache-split")
    with FakeUpstream(api_keys={"sk-cache-split"}) as upstream:
        yield upstream


@pytest.fixture
def claude(fake: FakeUpstream, start_daemon: StartDaemon) -> anthropic.Anthropic:
    provider = ProviderConfig(
        id="cl", kind="anthropic", base_url=fake.anthropic_base_url, api_key=f"env:{KEY_ENV}"
    )
    model = ModelConfig(id="default", provider="cl", model="claude-haiku-4-5")
    daemon = start_daemon(
        PalyraConfig(
            model_provider=ModelProviderRegistryConfig(providers=[provider], models=[model])
        )
    )
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


def _ask(question: str) -> dict[str, Any]:
    """A system prompt cached for an hour, then a long user block cached for five minutes."""
    return {
        "model": "default",
        "max_tokens": 64,
        "system": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": LONG + question, "cache_control": {"type": "ephemeral"}}
                ],
            }
        ],
    }  # fmt: skip


def _hour_written(fake: FakeUpstream) -> int:
    """The one-hour cache tokens the fake wrote for its last request (the prompt up to the
    system block's marker)."""
    found = cache_prefix(fake.requests[-1].body)
    assert found is not None
    return found[2]


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_client_gets_the_cache_writes_by_lifetime_exactly(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    ask = _ask("what is it?")
    if stream:
        with claude.messages.stream(**ask) as events:
            starts = [e for e in events if e.type == "message_start"]
            message = events.get_final_message()
        [start] = starts
        assert start.message.usage.cache_creation is not None
        assert (
            start.message.usage.cache_creation.model_dump()
            == message.usage.cache_creation.model_dump()
        )  # type: ignore[union-attr]
    else:
        message = claude.messages.create(**ask)
    hour = _hour_written(fake)
    usage = message.usage
    assert usage.cache_creation is not None
    five = usage.cache_creation.ephemeral_5m_input_tokens
    assert usage.cache_creation.ephemeral_1h_input_tokens == hour > 0
    assert five > 0
    assert usage.cache_creation_input_tokens == five + hour
    again = claude.messages.create(**ask)  # the same prefix: read, nothing written
    assert again.usage.cache_read_input_tokens == five + hour
    assert again.usage.cache_creation is not None
    assert again.usage.cache_creation.model_dump() == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 0,
    }


def test_the_contract_reads_the_split_and_writes_it_back_unchanged() -> None:
    wire = {
        "input_tokens": 10,
        "output_tokens": 4,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
    }
    usage = usage_from_anthropic(wire)
    assert (usage.cache_creation_5m_input_tokens, usage.cache_creation_1h_input_tokens) == (20, 30)
    assert usage.input_tokens == 160 and usage.cache_creation_input_tokens == 50
    back = message_usage_json(usage)
    assert {k: back[k] for k in wire} == wire
    # No split from the upstream: none invented.
    plain = usage_from_anthropic({k: v for k, v in wire.items() if k != "cache_creation"})
    assert plain.cache_creation_5m_input_tokens is None
    assert message_usage_json(plain)["cache_creation"] is None
    assert Usage().cache_creation_1h_input_tokens is None


def test_openai_clients_get_both_kinds_of_writes_inside_their_input_counts() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 50,
            "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
        }
    )
    chat = chat_usage_json(usage)
    assert chat["prompt_tokens"] == 10 + 100 + 20 + 30
    assert chat["prompt_tokens_details"] == {"cached_tokens": 100}
    responses = responses_usage_json(usage)
    assert responses["input_tokens"] == 160
    assert responses["input_tokens_details"] == {"cached_tokens": 100}
    assert responses["total_tokens"] == 164
