"""The usage ledger holds exactly the usage the provider reported, for whole and streamed
answers, cache and reasoning tokens included, on the OpenAI and Anthropic APIs (official SDKs
through a real daemon to the fake upstream); its cost is the pricing table's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from usage_support import KEY, KEY_ENV, make_tokens, store_auth, usage_config, wait_rows

from palyra.daemon import AppState
from palyra.model import Usage
from palyra.pricing import cost_nanousd, pricing_table
from palyra.testing import FakeUpstream

RunningDaemon = Any
StartDaemon = Any
SYSTEM = "You are terse. " * 200  # long enough to be worth caching


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}, cached_tokens=3) as upstream:
        yield upstream


@pytest.fixture
def setup(
    fake: FakeUpstream, start_daemon: StartDaemon, tmp_path: Path
) -> tuple[RunningDaemon, str, str, Path]:
    db = tmp_path / "palyra.db"
    [(token, token_id)] = make_tokens(db, ("team-a", None))
    auth, _ = store_auth(db)
    config = usage_config(fake.openai_base_url, fake.anthropic_base_url, db)
    daemon = start_daemon(AppState.from_config(config), auth=auth)
    return daemon, token, token_id, db


def price(kind: str, model: str, usage: Usage) -> int:
    found = pricing_table().price(kind, model)
    assert found is not None
    return cost_nanousd(usage, found)


def request_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    [row] = [r for r in rows if r["row_kind"] == "request"]
    return row


def test_openai_chat_whole_and_streamed_usage_lands_in_the_ledger(setup: Any) -> None:
    import openai

    daemon, token, token_id, db = setup
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=token, max_retries=0)
    whole = client.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": "count the cached words please"}],
        extra_headers={"x-request-id": "chat-whole"},
    )
    assert whole.usage is not None
    stream = client.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": "stream these words back to me"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "chat-stream"},
    )
    streamed = [chunk.usage for chunk in stream if chunk.usage is not None][-1]
    for request_id, seen in (("chat-whole", whole.usage), ("chat-stream", streamed)):
        rows = wait_rows(db, request_id)
        row = request_row(rows)
        cached = seen.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
        assert cached == 3
        assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
            seen.prompt_tokens,
            cached,
            seen.completion_tokens,
        )
        assert (row["token_id"], row["requested_model"], row["model_id"]) == (
            token_id,
            "gpt",
            "gpt",
        )
        assert (row["provider_id"], row["upstream_model"], row["outcome"]) == (
            "oai",
            "gpt-4.1",
            "ok",
        )
        assert row["usage_source"] == "provider"
        usage = Usage(
            input_tokens=seen.prompt_tokens,
            cached_input_tokens=cached,
            output_tokens=seen.completion_tokens,
        )
        assert row["cost_nanousd"] == price("openai", "gpt-4.1", usage) > 0
        [attempt] = [r for r in rows if r["row_kind"] == "attempt"]
        assert (attempt["outcome"], attempt["input_tokens"]) == ("ok", seen.prompt_tokens)


def test_openai_responses_reasoning_tokens_land_in_the_ledger(setup: Any) -> None:
    import openai

    daemon, token, _, db = setup
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=token, max_retries=0)
    whole = client.responses.create(
        model="reasoner",
        input="think about the cached words",
        reasoning={"effort": "low"},
        store=False,
        extra_headers={"x-request-id": "resp-whole"},
    )
    done = None
    with client.responses.stream(
        model="reasoner",
        input="think then stream",
        reasoning={"effort": "low"},
        store=False,
        extra_headers={"x-request-id": "resp-stream"},
    ) as events:
        done = events.get_final_response()
    for request_id, seen in (("resp-whole", whole.usage), ("resp-stream", done.usage)):
        assert seen is not None
        reasoning = seen.output_tokens_details.reasoning_tokens
        assert reasoning > 0
        row = request_row(wait_rows(db, request_id))
        assert (
            row["input_tokens"],
            row["cached_input_tokens"],
            row["output_tokens"],
            row["reasoning_tokens"],
        ) == (
            seen.input_tokens,
            seen.input_tokens_details.cached_tokens,
            seen.output_tokens,
            reasoning,
        )
        usage = Usage(
            input_tokens=seen.input_tokens,
            cached_input_tokens=seen.input_tokens_details.cached_tokens,
            output_tokens=seen.output_tokens,
            reasoning_tokens=reasoning,
        )
        assert row["cost_nanousd"] == price("openai", "gpt-4.1", usage)


def test_anthropic_cache_writes_and_reads_land_in_the_ledger(setup: Any) -> None:
    daemon, token, token_id, db = setup
    claude = anthropic.Anthropic(base_url=daemon.url, api_key=token, max_retries=0)
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    ask = [{"role": "user", "content": "hello there"}]
    first = claude.messages.create(
        model="sonnet",
        max_tokens=100,
        system=system,  # type: ignore[arg-type]
        messages=ask,  # type: ignore[arg-type]
        extra_headers={"x-request-id": "msg-write"},
    )
    with claude.messages.stream(
        model="sonnet",
        max_tokens=100,
        system=system,  # type: ignore[arg-type]
        messages=ask,  # type: ignore[arg-type]
        extra_headers={"x-request-id": "msg-read-stream"},
    ) as stream:
        second = stream.get_final_message()
    assert (first.usage.cache_creation_input_tokens or 0) > 0
    assert (second.usage.cache_read_input_tokens or 0) > 0
    for request_id, seen in (("msg-write", first.usage), ("msg-read-stream", second.usage)):
        row = request_row(wait_rows(db, request_id))
        read = seen.cache_read_input_tokens or 0
        written = seen.cache_creation_input_tokens or 0
        assert (
            row["input_tokens"],
            row["cached_input_tokens"],
            row["cache_write_tokens"],
            row["output_tokens"],
        ) == (seen.input_tokens + read + written, read, written, seen.output_tokens)
        assert (row["token_id"], row["provider_id"]) == (token_id, "claude")
        usage = Usage(
            input_tokens=seen.input_tokens + read + written,
            cached_input_tokens=read,
            cache_creation_input_tokens=written,
            output_tokens=seen.output_tokens,
        )
        assert row["cost_nanousd"] == price("anthropic", "claude-sonnet-4-5", usage)


def test_a_failed_request_is_recorded_with_its_failure_class(
    setup: Any, fake: FakeUpstream
) -> None:
    import openai

    daemon, token, _, db = setup
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=token, max_retries=0)
    fake.settings.fail_rate = 1.0
    fake.settings.fail_status = 400
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-request-id": "failed-1"},
        )
    rows = wait_rows(db, "failed-1")
    row = request_row(rows)
    assert (row["outcome"], row["status"], row["input_tokens"], row["cost_nanousd"]) == (
        "invalid_request",
        400,
        0,
        0,
    )
    assert [r["outcome"] for r in rows if r["row_kind"] == "attempt"] == ["invalid_request"]
