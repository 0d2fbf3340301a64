"""The daemon's Anthropic surface driven by the official ``anthropic`` SDK over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import BaseModel, TypeAdapter

from palyra.config.schema import DaemonConfig, default_config
from palyra.daemon import AppState
from palyra.model import (
    ChatRequest,
    ChatResponse,
    FailureClass,
    PalyraError,
    StreamEvent,
    TextDelta,
)
from palyra.providers.base import ProviderCapabilities
from palyra.providers.deterministic import DeterministicProvider
from palyra.providers.tokens import estimate_token_count

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
CLOCK: Any = {
    "name": "get_time",
    "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}},
}
PNG = base64.b64encode(b"\x89PNG" + b"\0" * 28).decode()
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def anthropic_client(daemon: RunningDaemon, **kwargs: Any) -> anthropic.Anthropic:
    options: dict[str, Any] = {"api_key": daemon.client_token} | kwargs
    return anthropic.Anthropic(base_url=daemon.url, max_retries=0, **options)


@pytest.fixture
def claude(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic_client(daemon)


def assert_no_extra_keys(value: Any, where: str = "") -> None:
    """The SDK's models keep unknown keys in ``model_extra``; none may be there."""
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{where}: unexpected keys {sorted(value.model_extra)}"
        for name in type(value).model_fields:
            assert_no_extra_keys(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_no_extra_keys(item, f"{where}[{i}]")


def sse_frames(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) per SSE frame."""
    frames = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        frames.append((lines["event"], orjson.loads(lines["data"])))
    return frames


def test_create_answers_with_system_prompt_and_provider_usage(
    claude: anthropic.Anthropic,
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="default",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello daemon"}],
    )
    message = raw.parse()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "You said: hello daemon"  # type: ignore[union-attr]
    assert (message.role, message.stop_reason, message.model) == (
        "assistant",
        "end_turn",
        "deterministic",
    )
    assert message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 4)
    assert raw.headers["x-palyra-model"] == "default"
    assert raw.headers["request-id"].startswith("req_")


def test_message_json_validates_strictly_against_sdk_types(daemon: RunningDaemon) -> None:
    body = {
        "model": "default",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "sys"}],
        "messages": [{"role": "user", "content": "call get_weather for Rome"}],
    }
    for extra in ({}, {"tools": [WEATHER]}):
        response = httpx2.post(
            f"{daemon.url}/v1/messages", json=body | extra, headers=daemon.headers
        )
        assert response.status_code == 200
        message = Message.model_validate(response.json(), strict=True)
        assert_no_extra_keys(message)
    assert [b.type for b in message.content] == ["tool_use"]


def test_images_from_base64_and_url_sources_reach_the_model(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="default",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what are these?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://e.org/a.jpg"}},
                ],
            }
        ],
    )
    assert message.content[0].text == (  # type: ignore[union-attr]
        "You said: what are these?\n[2 images: image/png, 32 bytes; https://e.org/a.jpg]"
    )


def test_parallel_tool_use_round_trip_with_results_in_one_user_message(
    claude: anthropic.Anthropic,
) -> None:
    messages: list[Any] = [
        {"role": "user", "content": 'call get_weather {"city": "Oslo"} and call get_time'}
    ]
    first = claude.messages.create(
        model="default", max_tokens=100, messages=messages, tools=[WEATHER, CLOCK]
    )
    assert first.stop_reason == "tool_use"
    weather, clock = first.content
    assert weather.type == "tool_use" and clock.type == "tool_use"
    assert (weather.name, weather.input) == ("get_weather", {"city": "Oslo"})
    assert clock.name == "get_time"
    messages += [
        first.to_param(),
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": weather.id, "content": "4 C"},
                {
                    "type": "tool_result",
                    "tool_use_id": clock.id,
                    "content": [{"type": "text", "text": "no clock"}],
                    "is_error": True,
                },
            ],
        },
    ]
    final = claude.messages.create(
        model="default", max_tokens=100, messages=messages, tools=[WEATHER, CLOCK]
    )
    assert final.content[0].text == (  # type: ignore[union-attr]
        "Tool get_weather returned: 4 C\nTool get_time failed: no clock"
    )
    assert final.stop_reason == "end_turn"


def test_disable_parallel_tool_use_and_named_tool_choice(claude: anthropic.Anthropic) -> None:
    single = claude.messages.create(
        model="default",
        max_tokens=100,
        messages=[{"role": "user", "content": "call get_weather and call get_time"}],
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert [b.name for b in single.content if b.type == "tool_use"] == ["get_weather"]
    named = claude.messages.create(
        model="default",
        max_tokens=100,
        messages=[{"role": "user", "content": "what time is it"}],
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert [b.name for b in named.content if b.type == "tool_use"] == ["get_time"]
    none = claude.messages.create(
        model="default",
        max_tokens=100,
        messages=[{"role": "user", "content": "call get_weather"}],
        tools=[WEATHER],
        tool_choice={"type": "none"},
    )
    assert none.content[0].text == "You said: call get_weather"  # type: ignore[union-attr]


def test_max_tokens_and_stop_sequences_map_to_stop_reasons(claude: anthropic.Anthropic) -> None:
    short = claude.messages.create(
        model="default", max_tokens=2, messages=[{"role": "user", "content": "one two three"}]
    )
    assert short.stop_reason == "max_tokens"
    assert short.content[0].text == "You said:"  # type: ignore[union-attr]
    cut = claude.messages.create(
        model="default",
        max_tokens=50,
        stop_sequences=["two"],
        messages=[{"role": "user", "content": "one two three"}],
    )
    assert cut.content[0].text == "You said: one "  # type: ignore[union-attr]


def test_stream_accumulates_text_like_create(claude: anthropic.Anthropic) -> None:
    request: Any = {
        "model": "default",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "stream me please"}],
    }
    with claude.messages.stream(**request) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["You ", "said: ", "stream ", "me ", "please"]
    whole = claude.messages.create(**request)
    assert [(b.type, b.text) for b in final.content] == [  # type: ignore[union-attr]
        (b.type, b.text)
        for b in whole.content  # type: ignore[union-attr]
    ]
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == (
        "end_turn",
        whole.usage.input_tokens,
        whole.usage.output_tokens,
    )


def test_streamed_tool_use_has_complete_input(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="default",
        max_tokens=100,
        messages=[{"role": "user", "content": 'call get_weather {"city": "Lima", "days": 3}'}],
        tools=[WEATHER],
    ) as stream:
        final = stream.get_final_message()
    [block] = final.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "Lima", "days": 3})
    assert final.stop_reason == "tool_use"


def test_stream_events_validate_strictly_in_anthropic_order(daemon: RunningDaemon) -> None:
    body = {
        "model": "default",
        "max_tokens": 100,
        "stream": True,
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "use get_weather"}],
    }
    with httpx2.stream(
        "POST", f"{daemon.url}/v1/messages", json=body, headers=daemon.headers
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(response.read())
    for name, data in frames:
        assert name == data["type"]
        assert_no_extra_keys(STREAM_EVENT.validate_python(data, strict=True), name)
    names = [name for name, _ in frames]
    assert names[:2] == ["message_start", "content_block_start"]
    assert set(names[2:-3]) == {"content_block_delta"} and len(names[2:-3]) > 1
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = frames[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] > 0
    block = frames[1][1]
    assert block["index"] == 0 and block["content_block"]["type"] == "tool_use"
    arguments = "".join(d["delta"]["partial_json"] for n, d in frames if n == "content_block_delta")
    assert orjson.loads(arguments) == {"city": "city"}
    delta = frames[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {
        "input_tokens": 2,
        "output_tokens": 2,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "output_tokens_details": None,
        "server_tool_use": None,
    }


def test_count_tokens_uses_the_provider_count(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(
        model="default",
        system="be brief",
        messages=[{"role": "user", "content": "count these four words"}],
    )
    assert counted.input_tokens == 6


class NoCountProvider(DeterministicProvider):
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(count_tokens=False)


def test_count_tokens_falls_back_to_the_estimate(start_daemon: StartDaemon) -> None:
    state = AppState(config=default_config(), providers={"deterministic": NoCountProvider()})
    claude = anthropic_client(start_daemon(state))
    counted = claude.messages.count_tokens(
        model="default", messages=[{"role": "user", "content": "count these four words"}]
    )
    request = ChatRequest.model_validate(
        {
            "model": "deterministic",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "count these four words"}]}
            ],
        }
    )
    assert counted.input_tokens == estimate_token_count(request, "deterministic").input_tokens


def test_bearer_and_x_api_key_are_both_accepted(daemon: RunningDaemon) -> None:
    for client in (
        anthropic_client(daemon, api_key=daemon.client_token),
        anthropic.Anthropic(base_url=daemon.url, auth_token=daemon.client_token, max_retries=0),
    ):
        message = client.messages.create(
            model="default", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].text == "You said: hi"  # type: ignore[union-attr]


def test_unknown_model_is_not_found(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.create(
            model="claude-nine", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": info.value.body["error"]["message"]},  # type: ignore[index]
    }
    assert "known: default, embed, whisper" in info.value.message


def test_missing_max_tokens_is_a_bad_request(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.post(
            "/v1/messages",
            body={"model": "default", "messages": [{"role": "user", "content": "x"}]},
            cast_to=Message,
        )
    assert "max_tokens: Field required" in info.value.message
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_model_without_chat_is_an_invalid_request(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="does not support chat"):
        claude.messages.create(
            model="embed", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"model": "default", "messages": [', "not valid JSON"),
        (b"[1]", "the request body must be a JSON object"),
        (b'{"model": "default", "max_tokens": 5, "messages": []}', "messages must be a non-empty"),
        (
            b'{"model": "default", "max_tokens": 5, "messages": [{"role": "system", '
            b'"content": "x"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "default", "max_tokens": 5, "messages": [{"role": "user", "content": '
            b'[{"type": "document", "source": {}}]}]}',
            "messages[0].content[0].source.type is None",
        ),
        (
            b'{"model": "default", "max_tokens": 0, "messages": [{"role": "user", '
            b'"content": "x"}]}',
            "max_tokens",
        ),
    ],
    ids=["truncated", "array", "no-messages", "system-role", "document", "zero-max-tokens"],
)
def test_malformed_or_invalid_body_is_400_in_anthropic_shape(
    daemon: RunningDaemon, body: bytes, expected: str
) -> None:
    response = httpx2.post(
        f"{daemon.url}/v1/messages",
        content=body,
        headers=daemon.headers | {"content-type": "application/json"},
    )
    assert response.status_code == 400
    payload = response.json()
    assert set(payload) == {"type", "error"} and payload["type"] == "error"
    assert set(payload["error"]) == {"type", "message"}
    assert payload["error"]["type"] == "invalid_request_error"
    assert expected in payload["error"]["message"]
    assert "Traceback" not in response.text


def test_oversized_body_is_413_request_too_large(start_daemon: StartDaemon) -> None:
    config = default_config().model_copy(update={"daemon": DaemonConfig(max_body_bytes=1024)})
    running = start_daemon(AppState.from_config(config))
    with pytest.raises(anthropic.APIStatusError) as info:
        anthropic_client(running).messages.create(
            model="default", max_tokens=5, messages=[{"role": "user", "content": "x" * 2000}]
        )
    assert info.value.status_code == 413
    assert info.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    assert "max_body_bytes" in info.value.message


class FailingProvider(DeterministicProvider):
    """Streams two words then fails, or fails at once with a rate limit."""

    def __init__(self, *, rate_limited: bool = False) -> None:
        super().__init__(id="deterministic")
        self.rate_limited = rate_limited

    async def chat(self, request: ChatRequest, *, credential: object = None) -> ChatResponse:
        raise PalyraError.of(FailureClass.RATE_LIMITED, "slow down", retry_after_s=1.2)

    async def stream_chat(  # type: ignore[override]
        self, request: ChatRequest, *, credential: object = None
    ) -> AsyncIterator[StreamEvent]:
        if self.rate_limited:
            raise PalyraError.of(FailureClass.UPSTREAM_UNAVAILABLE, "upstream is overloaded")
        count = 0
        async for event in super().stream_chat(request):
            yield event
            count += isinstance(event, TextDelta)
            if count == 2:
                raise PalyraError.of(FailureClass.CONNECTION, "upstream hung up")


def failing(start_daemon: StartDaemon, *, rate_limited: bool = False) -> RunningDaemon:
    provider = FailingProvider(rate_limited=rate_limited)
    return start_daemon(AppState(config=default_config(), providers={"deterministic": provider}))


def test_rate_limit_keeps_status_type_and_retry_after(start_daemon: StartDaemon) -> None:
    claude = anthropic_client(failing(start_daemon, rate_limited=True))
    with pytest.raises(anthropic.RateLimitError) as info:
        claude.messages.create(
            model="default", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.InternalServerError) as streamed:
        claude.messages.create(
            model="default",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            stream=True,
        )
    assert streamed.value.status_code == 503
    assert streamed.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_mid_stream_failure_is_an_error_event_without_message_stop(
    start_daemon: StartDaemon,
) -> None:
    running = failing(start_daemon)
    body = {
        "model": "default",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "a b c"}],
    }
    with httpx2.stream(
        "POST", f"{running.url}/v1/messages", json=body, headers=running.headers
    ) as response:
        assert response.status_code == 200
        frames = sse_frames(response.read())
    names = [name for name, _ in frames]
    assert names[-1] == "error" and "message_stop" not in names
    error = frames[-1][1]
    assert (error["type"], error["error"]["type"]) == ("error", "api_error")
    assert "broke after it had started (connection: upstream hung up)" in error["error"]["message"]
    with pytest.raises(anthropic.APIStatusError, match="upstream hung up"):
        request = {k: v for k, v in body.items() if k != "stream"}
        with anthropic_client(running).messages.stream(**request) as stream:
            stream.get_final_message()


def test_openai_and_anthropic_requests_for_one_conversation_agree(
    daemon: RunningDaemon, claude: anthropic.Anthropic
) -> None:
    openai_client = daemon.openai_client()
    turns = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    via_openai = openai_client.chat.completions.create(
        model="default", messages=[{"role": "system", "content": "be kind"}, *turns]
    )
    via_anthropic = claude.messages.create(
        model="default",
        max_tokens=100,
        system="be kind",
        messages=turns,  # type: ignore[arg-type]
    )
    text = via_openai.choices[0].message.content
    assert text == "You said: second question"
    assert via_anthropic.content[0].text == text  # type: ignore[union-attr]
    assert via_anthropic.usage.input_tokens == via_openai.usage.prompt_tokens  # type: ignore[union-attr]
