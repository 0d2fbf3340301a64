"""AnthropicProvider against a real HTTP server on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import orjson
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from palyra.model import (
    ChatRequest,
    EmbeddingRequest,
    FailureClass,
    Message,
    MessageStart,
    PalyraError,
    Role,
    StreamAccumulator,
    TranscriptionRequest,
)
from palyra.providers.anthropic import AnthropicProvider
from palyra.providers.base import Credential, ModelProvider
from palyra.providers.upstream.guard import make_upstream_client

KEY = "sk-ant-api03-secretsecretsecret"
REQUEST = ChatRequest(model="claude-x", messages=[Message.text(Role.USER, "hi")])

MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 9, "output_tokens": 2},
}


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {orjson.dumps(data).decode()}\n\n".encode()


START = sse(
    "message_start",
    {
        "type": "message_start",
        "message": {**MESSAGE, "content": [], "stop_reason": None, "usage": {"input_tokens": 9}},
    },
)
REST = [
    sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello!"},
        },
    ),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
    ),
    sse("message_stop", {"type": "message_stop"}),
]


@pytest.fixture(params=["httpx2", "upstream"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx2.AsyncClient]:
    """A plain httpx2 client, and the daemon's own (pooled, guarded, with the raw path)."""
    if request.param == "upstream":
        async with make_upstream_client(allow_private=False, timeout_s=5.0) as upstream:
            yield upstream
        return
    async with httpx2.AsyncClient(trust_env=False, timeout=5.0) as c:
        yield c


@pytest.fixture
def provider(httpserver_ipv4: HTTPServer, client: httpx2.AsyncClient) -> AnthropicProvider:
    return AnthropicProvider("anth", httpserver_ipv4.url_for("/").rstrip("/"), client, api_key=KEY)


def test_provider_satisfies_the_protocol_and_hides_its_key(provider: AnthropicProvider) -> None:
    assert isinstance(provider, ModelProvider)
    assert AnthropicProvider.kind == "anthropic"
    assert KEY not in repr(provider)


async def test_chat_sends_auth_version_and_json_headers(
    httpserver_ipv4: HTTPServer, provider: AnthropicProvider
) -> None:
    httpserver_ipv4.expect_request(
        "/v1/messages",
        method="POST",
        headers={
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
    ).respond_with_json(MESSAGE)
    response = await provider.chat(REQUEST)
    assert (response.content, response.provider, response.usage.input_tokens) == (
        "Hello!",
        "anth",
        9,
    )
    sent = orjson.loads(httpserver_ipv4.log[0][0].get_data())
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "stream" not in sent


async def test_bearer_scheme_and_per_call_credential(
    httpserver_ipv4: HTTPServer, client: httpx2.AsyncClient
) -> None:
    provider = AnthropicProvider(
        "mm",
        httpserver_ipv4.url_for("/").rstrip("/"),
        client,
        api_key=KEY,
        auth_scheme="bearer",
        headers={"x-extra": "1"},
    )
    httpserver_ipv4.expect_request(
        "/v1/messages", headers={"authorization": "Bearer rotated", "x-extra": "1"}
    ).respond_with_json(MESSAGE)
    await provider.chat(REQUEST, credential=Credential("rotated", profile_id="p2"))
    assert "x-api-key" not in httpserver_ipv4.log[0][0].headers


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "headers", "failure", "retry_after"),
    [
        (
            401,
            error_body("authentication_error", "invalid x-api-key"),
            {},
            FailureClass.AUTH_INVALID,
            None,
        ),
        (
            429,
            error_body("rate_limit_error", "slow down"),
            {"retry-after": "7"},
            FailureClass.RATE_LIMITED,
            7.0,
        ),
        (
            529,
            error_body("overloaded_error", "Overloaded"),
            {},
            FailureClass.UPSTREAM_UNAVAILABLE,
            None,
        ),
        (500, error_body("api_error", "Internal"), {}, FailureClass.UPSTREAM_UNAVAILABLE, None),
        (404, error_body("not_found_error", "model: nope"), {}, FailureClass.NOT_FOUND, None),
    ],
)
async def test_http_errors_map_to_failure_classes(
    httpserver_ipv4: HTTPServer,
    provider: AnthropicProvider,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    failure: FailureClass,
    retry_after: float | None,
) -> None:
    httpserver_ipv4.expect_request("/v1/messages").respond_with_json(
        body, status=status, headers=headers
    )
    with pytest.raises(PalyraError) as info:
        await provider.chat(REQUEST)
    envelope = info.value.envelope
    assert (envelope.failure_class, envelope.retry_after_s) == (failure, retry_after)
    assert (envelope.upstream_status, envelope.provider) == (status, "anth")


async def test_streamed_http_error_maps_like_a_whole_one(
    httpserver_ipv4: HTTPServer, provider: AnthropicProvider
) -> None:
    httpserver_ipv4.expect_request("/v1/messages").respond_with_json(
        error_body("overloaded_error", "Overloaded"), status=529
    )
    with pytest.raises(PalyraError) as info:
        [e async for e in provider.stream_chat(REQUEST)]
    assert info.value.failure_class is FailureClass.UPSTREAM_UNAVAILABLE


async def test_key_echoed_by_upstream_is_redacted_from_the_error(
    httpserver_ipv4: HTTPServer, provider: AnthropicProvider
) -> None:
    httpserver_ipv4.expect_request("/v1/messages").respond_with_json(
        error_body("authentication_error", f"bad key {KEY}"), status=401
    )
    with pytest.raises(PalyraError) as info:
        await provider.chat(REQUEST)
    assert KEY not in str(info.value) and KEY not in info.value.envelope.model_dump_json()


async def test_non_json_answer_is_malformed(
    httpserver_ipv4: HTTPServer, provider: AnthropicProvider
) -> None:
    httpserver_ipv4.expect_request("/v1/messages").respond_with_data("<html>oops</html>")
    with pytest.raises(PalyraError) as info:
        await provider.chat(REQUEST)
    assert info.value.failure_class is FailureClass.MALFORMED_RESPONSE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused_is_connection(
    client: httpx2.AsyncClient, streaming: bool
) -> None:
    provider = AnthropicProvider("anth", f"http://127.0.0.1:{free_port()}", client, api_key=KEY)
    with pytest.raises(PalyraError) as info:
        if streaming:
            [e async for e in provider.stream_chat(REQUEST)]
        else:
            await provider.chat(REQUEST)
    assert info.value.failure_class is FailureClass.CONNECTION


async def test_first_stream_event_arrives_before_the_server_finishes(
    httpserver_ipv4: HTTPServer, provider: AnthropicProvider
) -> None:
    release = threading.Event()

    finished = threading.Event()

    def body() -> Iterator[bytes]:
        yield START
        if release.wait(timeout=3):  # a buffering client never releases: the stream stays cut
            yield from REST
        finished.set()

    def handler(request: Request) -> Response:
        assert orjson.loads(request.get_data())["stream"] is True
        return Response(body(), content_type="text/event-stream")

    httpserver_ipv4.expect_request("/v1/messages").respond_with_handler(handler)
    stream = provider.stream_chat(REQUEST)
    first = await anext(stream)
    assert isinstance(first, MessageStart)
    assert not finished.is_set()
    release.set()
    rest = [e async for e in stream]
    response = StreamAccumulator().extend([first, *rest]).response()
    assert (response.content, response.usage.output_tokens) == ("Hello!", 2)


async def test_stream_cut_after_start_is_interrupted(
    httpserver_ipv4: HTTPServer, provider: AnthropicProvider
) -> None:
    httpserver_ipv4.expect_request("/v1/messages").respond_with_data(
        START + REST[0], content_type="text/event-stream"
    )
    with pytest.raises(PalyraError) as info:
        [e async for e in provider.stream_chat(REQUEST)]
    assert info.value.failure_class is FailureClass.STREAM_INTERRUPTED


async def test_list_models_follows_pages(
    httpserver_ipv4: HTTPServer, provider: AnthropicProvider
) -> None:
    def model(model_id: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id,
            "created_at": "2025-01-01T00:00:00Z",
        }

    httpserver_ipv4.expect_ordered_request(
        "/v1/models", query_string={"limit": "1000"}, headers={"x-api-key": KEY}
    ).respond_with_json({"data": [model("a")], "has_more": True, "first_id": "a", "last_id": "a"})
    httpserver_ipv4.expect_ordered_request(
        "/v1/models", query_string={"limit": "1000", "after_id": "a"}
    ).respond_with_json({"data": [model("b")], "has_more": False, "first_id": "b", "last_id": "b"})
    models = await provider.list_models()
    assert [(m.id, m.provider) for m in models] == [("a", "anth"), ("b", "anth")]


async def test_count_tokens_is_exact_and_sends_only_counting_fields(
    httpserver_ipv4: HTTPServer, provider: AnthropicProvider
) -> None:
    httpserver_ipv4.expect_request(
        "/v1/messages/count_tokens", method="POST", headers={"anthropic-version": "2023-06-01"}
    ).respond_with_json({"input_tokens": 12})
    count = await provider.count_tokens(REQUEST)
    assert (count.input_tokens, count.estimated) == (12, False)
    assert "max_tokens" not in orjson.loads(httpserver_ipv4.log[0][0].get_data())


async def test_embeddings_and_transcription_are_unsupported_with_a_way_out(
    provider: AnthropicProvider,
) -> None:
    with pytest.raises(PalyraError) as info:
        await provider.embed(EmbeddingRequest(model="emb", inputs=["x"]))
    assert info.value.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    assert '"anth"' in str(info.value) and "embeddings model" in str(info.value)
    with pytest.raises(PalyraError) as info:
        await provider.transcribe(TranscriptionRequest(model="whisper", audio=b"RIFF"))
    assert info.value.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    assert "transcription model" in str(info.value)
