"""The daemon's OpenAI surface driven by the official ``openai`` SDK over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx2
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from palyra.config.schema import DaemonConfig, default_config
from palyra.daemon import AppState
from palyra.model import (
    ChatRequest,
    ChatResponse,
    FailureClass,
    Limits,
    PalyraError,
    StreamEvent,
    TextDelta,
)
from palyra.providers.base import ProviderCapabilities
from palyra.providers.deterministic import DeterministicProvider

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
PNG_DATA_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * 28).decode()


def sse_payloads(body: bytes) -> list[bytes]:
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]


def test_chat_completion_round_trip(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="default",
        messages=[
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": "hello daemon"},
        ],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "You said: hello daemon"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "deterministic"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 4)
    assert raw.headers["x-palyra-model"] == "default"
    assert len(raw.headers["x-palyra-request-id"]) == 32


def test_completion_json_validates_strictly_against_sdk_types(daemon: RunningDaemon) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": "call get_weather"}]}
    for extra in ({}, {"tools": [WEATHER_TOOL]}):
        response = httpx2.post(
            f"{daemon.url}/v1/chat/completions", json=body | extra, headers=daemon.headers
        )
        ChatCompletion.model_validate(orjson.loads(response.content), strict=True)


def test_stream_iterator_yields_word_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "stream me please"}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert deltas == ["You ", "said: ", "stream ", "me ", "please"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_stream_helper_accumulates_text_and_tool_calls(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="default",
        messages=[{"role": "user", "content": 'call get_weather {"city": "Lima", "days": 3}'}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "Lima", "days": 3}
    assert final.choices[0].finish_reason == "tool_calls"

    with client.chat.completions.stream(
        model="default", messages=[{"role": "user", "content": "just text"}]
    ) as stream:
        assert stream.get_final_completion().choices[0].message.content == "You said: just text"


def test_stream_chunks_validate_strictly_and_end_with_done(daemon: RunningDaemon) -> None:
    body = {
        "model": "default",
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "use get_weather"}],
    }
    with httpx2.stream(
        "POST", f"{daemon.url}/v1/chat/completions", json=body, headers=daemon.headers
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        payloads = sse_payloads(response.read())
    assert payloads[-1] == b"[DONE]"
    chunks = [
        ChatCompletionChunk.model_validate(orjson.loads(p), strict=True) for p in payloads[:-1]
    ]
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices]
    starts = [tc[0] for tc in calls if tc and tc[0].id]
    assert len(starts) == 1 and starts[0].function and starts[0].function.name == "get_weather"
    fragments = [tc[0].function.arguments for tc in calls if tc and not tc[0].id and tc[0].function]
    assert len(fragments) > 1


def test_include_usage_adds_a_final_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    *rest, last = list(stream)
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        2,
        4,
        6,
    )
    assert all(c.usage is None for c in rest)


def test_tool_call_round_trip(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "please call get_weather for Oslo"}]
    first = client.chat.completions.create(model="default", messages=messages, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    [call] = message.tool_calls or []
    assert message.content is None
    messages += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 4}'},
    ]
    final = client.chat.completions.create(model="default", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == 'Tool get_weather returned: {"temp_c": 4}'
    assert final.choices[0].finish_reason == "stop"


def test_image_message_is_described(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="default",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what are these?"},
                    {"type": "image_url", "image_url": {"url": PNG_DATA_URL}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://e.org/a.jpg", "detail": "low"},
                    },
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == (
        "You said: what are these?\n[2 images: image/png, 32 bytes; https://e.org/a.jpg]"
    )


class Forecast(BaseModel):
    city: str
    days: int
    sunny: bool


def test_json_modes(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
    )
    assert orjson.loads(plain.choices[0].message.content or "") == {"reply": "You said: hi"}
    parsed = client.chat.completions.parse(
        model="default",
        messages=[{"role": "user", "content": "forecast for two"}],
        response_format=Forecast,
    )
    assert parsed.choices[0].message.parsed == Forecast(
        city="You said: forecast for two", days=3, sunny=True
    )


def test_models_list_shows_configured_models(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [(m.id, m.owned_by) for m in models] == [
        ("default", "deterministic"),
        ("embed", "deterministic"),
        ("whisper", "deterministic"),
    ]


def test_healthz(daemon: RunningDaemon) -> None:
    response = httpx2.get(f"{daemon.url}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_unknown_model_is_not_found_listing_known_ids(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    assert "known: default, embed, whisper" in info.value.message


def test_model_without_chat_capability_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="embed", messages=[{"role": "user", "content": "x"}])
    assert "does not support chat" in info.value.message
    assert "use one of: default" in info.value.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"model": "default", "messages": [', "not valid JSON"),
        (b"[1, 2]", "the request body must be a JSON object"),
        (b'{"model": "default"}', "messages must be a non-empty array"),
        (b'{"model": "default", "messages": [{"role": "robot"}]}', "messages[0].role"),
        (
            b'{"model": "default", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": 9}',
            "temperature",
        ),
    ],
    ids=["truncated", "array", "no-messages", "bad-role", "out-of-range"],
)
def test_malformed_or_invalid_body_is_400_in_openai_shape(
    daemon: RunningDaemon, body: bytes, expected: str
) -> None:
    response = httpx2.post(
        f"{daemon.url}/v1/chat/completions",
        content=body,
        headers=daemon.headers | {"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert expected in error["message"]
    assert "Traceback" not in response.text


def test_unknown_route_is_404_in_openai_shape(daemon: RunningDaemon) -> None:
    response = httpx2.get(f"{daemon.url}/v1/nothing-here", headers=daemon.headers)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] is None  # as OpenAI's


def test_limits_are_checked_before_the_provider(start_daemon: StartDaemon) -> None:
    state = AppState.from_config(default_config(), limits=Limits(max_tools=1))
    client = start_daemon(state).openai_client()
    second = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "name": "other"}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "x"}],
            tools=[WEATHER_TOOL, second],
        )
    assert info.value.code == "limit_exceeded"
    assert "2 tools in one request; the limit is 1" in info.value.message


def test_oversized_body_is_413(start_daemon: StartDaemon) -> None:
    config = default_config().model_copy(update={"daemon": DaemonConfig(max_body_bytes=1024)})
    running = start_daemon(AppState.from_config(config))
    body = {"model": "default", "messages": [{"role": "user", "content": "x" * 2000}]}
    response = httpx2.post(f"{running.url}/v1/chat/completions", json=body, headers=running.headers)
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["error"]["message"]


class FailingProvider(DeterministicProvider):
    """Streams two words, then fails; or fails at once with a rate limit."""

    capabilities: ClassVar[ProviderCapabilities] = DeterministicProvider.capabilities

    def __init__(self, *, rate_limited: bool = False) -> None:
        super().__init__(id="deterministic")
        self.rate_limited = rate_limited

    async def chat(self, request: ChatRequest, *, credential: object = None) -> ChatResponse:
        raise PalyraError.of(FailureClass.RATE_LIMITED, "slow down", retry_after_s=2.5)

    async def stream_chat(  # type: ignore[override]
        self, request: ChatRequest, *, credential: object = None
    ) -> AsyncIterator[StreamEvent]:
        if self.rate_limited:
            raise PalyraError.of(FailureClass.RATE_LIMITED, "slow down", retry_after_s=2.5)
        count = 0
        async for event in super().stream_chat(request):
            yield event
            count += isinstance(event, TextDelta)
            if count == 2:
                raise PalyraError.of(FailureClass.CONNECTION, "upstream hung up", code="gone")


def failing_daemon(start_daemon: StartDaemon, *, rate_limited: bool = False) -> RunningDaemon:
    config = default_config()
    state = AppState(
        config=config, providers={"deterministic": FailingProvider(rate_limited=rate_limited)}
    )
    return start_daemon(state)


def test_mid_stream_failure_is_an_sse_error_without_done(start_daemon: StartDaemon) -> None:
    running = failing_daemon(start_daemon)
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    with httpx2.stream(
        "POST", f"{running.url}/v1/chat/completions", json=body, headers=running.headers
    ) as response:
        assert response.status_code == 200
        payloads = sse_payloads(response.read())
    assert b"[DONE]" not in payloads
    error = orjson.loads(payloads[-1])["error"]
    assert error["code"] == "connection"  # the upstream cause; the class is stream_interrupted
    assert "upstream hung up" in error["message"]
    with pytest.raises(openai.APIError, match="upstream hung up"):
        list(running.openai_client().chat.completions.create(**body))


def test_error_before_the_stream_starts_keeps_status_and_retry_after(
    start_daemon: StartDaemon,
) -> None:
    running = failing_daemon(start_daemon, rate_limited=True)
    client = running.openai_client()
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "x"}], stream=stream
            )
        assert info.value.response.headers["retry-after"] == "3"
        assert info.value.type == "rate_limit_error"


class HangingProvider(DeterministicProvider):
    """Sends its first events, then waits forever; records when its stream is closed."""

    def __init__(self) -> None:
        super().__init__(id="deterministic")
        self.closed = threading.Event()

    async def stream_chat(  # type: ignore[override]
        self, request: ChatRequest, *, credential: object = None
    ) -> AsyncIterator[StreamEvent]:
        try:
            async for event in super().stream_chat(request):
                yield event
                if isinstance(event, TextDelta):
                    await asyncio.Event().wait()
        finally:
            self.closed.set()


def test_client_disconnect_closes_the_provider_stream(start_daemon: StartDaemon) -> None:
    provider = HangingProvider()
    running = start_daemon(AppState(config=default_config(), providers={"deterministic": provider}))
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    with httpx2.stream(
        "POST", f"{running.url}/v1/chat/completions", json=body, headers=running.headers
    ) as response:
        first = next(response.iter_bytes())
        assert first.startswith(b"data: ")
    assert provider.closed.wait(timeout=5)
