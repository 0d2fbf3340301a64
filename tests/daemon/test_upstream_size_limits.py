"""A daemon whose upstream answers more than ``max_upstream_body_bytes`` / one event more than
``max_upstream_event_bytes``: the client gets a clear upstream error, never the flood."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.testing import FakeUpstream, Fault, FaultKind

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

MESSAGES = [{"role": "user", "content": "one two three"}]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def daemon(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="gpt",
            providers=[
                ProviderConfig(
                    id="oa", kind="openai", base_url=fake.openai_base_url, api_key="env:HOME"
                )
            ],
            models=[ModelConfig(id="gpt", provider="oa", model="gpt-4o-mini")],
            max_retries=0,
            max_upstream_body_bytes=64 * 1024,
            max_upstream_event_bytes=16 * 1024,
        )
    )
    return start_daemon(config)


def test_a_whole_answer_past_the_limit_is_a_502_naming_the_setting(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    fake.faults.push(Fault(FaultKind.OVERSIZED, size_bytes=1024 * 1024))
    with pytest.raises(openai.InternalServerError) as info:
        daemon.openai_client().chat.completions.create(model="gpt", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.status_code == 502
    assert "larger than 65536 bytes" in info.value.message
    assert "max_upstream_body_bytes" in info.value.message
    assert len(info.value.response.content) < 2000
    answer = daemon.openai_client().chat.completions.create(model="gpt", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content


def test_a_stream_event_past_the_limit_ends_the_stream_with_an_error_event(
    fake: FakeUpstream, daemon: RunningDaemon
) -> None:
    fake.faults.push(Fault(FaultKind.OVERSIZED, size_bytes=512 * 1024, after_chunks=2))
    body = {"model": "gpt", "messages": MESSAGES, "stream": True}
    with httpx2.stream(
        "POST", f"{daemon.url}/v1/chat/completions", json=body, headers=daemon.headers
    ) as response:
        raw = response.read()
    assert len(raw) < 10_000
    assert b"max_upstream_event_bytes" in raw
    assert b"padding" not in raw
