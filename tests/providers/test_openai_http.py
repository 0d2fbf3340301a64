"""OpenAIProvider and OpenAICompatibleProvider against a real HTTP server on loopback."""

from __future__ import annotations

import base64
import socket
import struct
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
    TextDelta,
    TranscriptionRequest,
)
from palyra.providers.base import Credential, ModelProvider
from palyra.providers.openai import OpenAIProvider
from palyra.providers.openai_compatible import OpenAICompatibleProvider, quirks_from_names
from palyra.providers.upstream.guard import make_upstream_client

KEY = "sk-proj-secretsecretsecret1234"
REQUEST = ChatRequest(
    model="gpt-x",
    messages=[Message.text(Role.DEVELOPER, "be brief"), Message.text(Role.USER, "hi")],
    max_output_tokens=20,
)
COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700,
    "model": "gpt-x",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}


def data(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return f"data: {text}\n\n".encode()


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    base = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700,
        "model": "gpt-x",
    }
    return data({**base, "choices": choices, **extra})


FIRST = chunk({"role": "assistant", "content": "Hel"})
REST = [
    chunk({"content": "lo!"}),
    chunk({}, "stop"),
    chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 2}),
    data("[DONE]"),
]


@pytest.fixture(params=["httpx2", "upstream"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx2.AsyncClient]:
    """A plain httpx2 client, and the daemon's own (pooled, guarded, with the raw path)."""
    if request.param == "upstream":
        async with make_upstream_client(allow_private=False, timeout_s=5.0) as upstream:
            yield upstream
        return
    async with httpx2.AsyncClient(timeout=5) as c:
        yield c


def base_url(server: HTTPServer) -> str:
    return server.url_for("/v1")


@pytest.fixture
def provider(httpserver_ipv4: HTTPServer, client: httpx2.AsyncClient) -> OpenAIProvider:
    return OpenAIProvider("oai", base_url(httpserver_ipv4), client, api_key=KEY)


def test_provider_satisfies_the_protocol_and_hides_its_key(provider: OpenAIProvider) -> None:
    assert isinstance(provider, ModelProvider)
    assert KEY not in repr(provider)
    assert (OpenAIProvider.kind, OpenAICompatibleProvider.kind) == ("openai", "openai_compatible")
    assert OpenAIProvider.capabilities.embeddings and OpenAIProvider.capabilities.transcription


async def test_chat_sends_bearer_and_json_and_parses_the_answer(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider
) -> None:
    httpserver_ipv4.expect_request(
        "/v1/chat/completions",
        method="POST",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    ).respond_with_json(COMPLETION)
    response = await provider.chat(REQUEST.model_copy(update={"stream": True}))
    assert (response.content, response.usage.input_tokens, response.provider) == (
        "Hello!",
        9,
        "oai",
    )
    sent = orjson.loads(httpserver_ipv4.log[0][0].get_data())
    assert "stream" not in sent and sent["messages"][0]["role"] == "developer"
    assert sent["max_completion_tokens"] == 20


async def test_per_call_credential_overrides_the_configured_key(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider
) -> None:
    httpserver_ipv4.expect_request(
        "/v1/chat/completions", headers={"Authorization": "Bearer other-key"}
    ).respond_with_json(COMPLETION)
    await provider.chat(REQUEST, credential=Credential("other-key", profile_id="p2"))


async def test_compatible_provider_sends_its_quirks_and_no_key_when_none(
    httpserver_ipv4: HTTPServer, client: httpx2.AsyncClient
) -> None:
    provider = OpenAICompatibleProvider(
        "local",
        base_url(httpserver_ipv4),
        client,
        headers={"X-Team": "search"},
        quirks=quirks_from_names(["vllm"]),
    )
    httpserver_ipv4.expect_request(
        "/v1/chat/completions", headers={"X-Team": "search"}
    ).respond_with_json(COMPLETION)
    await provider.chat(REQUEST)
    request = httpserver_ipv4.log[0][0]
    sent = orjson.loads(request.get_data())
    assert "Authorization" not in request.headers
    assert sent["messages"][0]["role"] == "system" and sent["max_tokens"] == 20


def error(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@pytest.mark.parametrize(
    ("status", "body", "headers", "failure", "retry_after"),
    [
        (401, error("Incorrect API key", "invalid_request_error", "invalid_api_key"), {},
         FailureClass.AUTH_INVALID, None),
        (429, error("Rate limit reached", "requests", "rate_limit_exceeded"), {"Retry-After": "7"},
         FailureClass.RATE_LIMITED, 7.0),
        (429, error("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
         {}, FailureClass.QUOTA_EXHAUSTED, None),
        (500, error("The server had an error", "server_error"), {},
         FailureClass.UPSTREAM_UNAVAILABLE, None),
        (400, error("maximum context length is 8192 tokens", "invalid_request_error",
                    "context_length_exceeded"), {}, FailureClass.CONTEXT_TOO_LONG, None),
    ],
    ids=["401", "429-retry-after", "429-quota", "500", "400-context"],
)  # fmt: skip
@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "stream"])
async def test_http_errors_map_to_failure_classes(
    httpserver_ipv4: HTTPServer,
    provider: OpenAIProvider,
    streaming: bool,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    failure: FailureClass,
    retry_after: float | None,
) -> None:
    httpserver_ipv4.expect_request("/v1/chat/completions").respond_with_json(
        body, status=status, headers=headers
    )
    with pytest.raises(PalyraError) as info:
        if streaming:
            [e async for e in provider.stream_chat(REQUEST)]
        else:
            await provider.chat(REQUEST)
    envelope = info.value.envelope
    assert (envelope.failure_class, envelope.retry_after_s) == (failure, retry_after)
    assert (envelope.upstream_status, envelope.provider) == (status, "oai")


async def test_key_echoed_by_upstream_is_redacted_from_the_error(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider
) -> None:
    httpserver_ipv4.expect_request("/v1/chat/completions").respond_with_json(
        error(f"Incorrect API key provided: {KEY}", "invalid_request_error", "invalid_api_key"),
        status=401,
    )
    with pytest.raises(PalyraError) as info:
        await provider.chat(REQUEST)
    assert KEY not in str(info.value) and KEY not in info.value.envelope.model_dump_json()


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"object":"list"}', b"[]"])
async def test_invalid_json_or_missing_choices_is_malformed(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider, body: bytes
) -> None:
    httpserver_ipv4.expect_request("/v1/chat/completions").respond_with_data(body)
    with pytest.raises(PalyraError) as info:
        await provider.chat(REQUEST)
    assert info.value.envelope.failure_class is FailureClass.MALFORMED_RESPONSE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "stream"])
async def test_connection_refused_is_connection(
    client: httpx2.AsyncClient, streaming: bool
) -> None:
    provider = OpenAIProvider("oai", f"http://127.0.0.1:{free_port()}/v1", client, api_key=KEY)
    with pytest.raises(PalyraError) as info:
        if streaming:
            [e async for e in provider.stream_chat(REQUEST)]
        else:
            await provider.chat(REQUEST)
    assert info.value.envelope.failure_class is FailureClass.CONNECTION
    assert KEY not in str(info.value)


async def test_first_stream_event_arrives_before_the_server_finishes(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider
) -> None:
    release = threading.Event()
    finished = threading.Event()

    def body() -> Iterator[bytes]:
        yield FIRST
        if release.wait(timeout=3):  # a buffering client never releases: the stream stays cut
            yield from REST
        finished.set()

    def handler(request: Request) -> Response:
        sent = orjson.loads(request.get_data())
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
        assert request.headers["Accept"] == "text/event-stream"
        return Response(body(), content_type="text/event-stream")

    httpserver_ipv4.expect_request("/v1/chat/completions").respond_with_handler(handler)
    stream = provider.stream_chat(REQUEST)
    first = await anext(stream)
    assert isinstance(first, MessageStart)
    assert await anext(stream) == TextDelta(text="Hel")
    assert not finished.is_set()
    release.set()
    rest = [e async for e in stream]
    response = StreamAccumulator().extend([first, TextDelta(text="Hel"), *rest]).response()
    assert (response.content, response.usage.input_tokens, response.usage.source) == (
        "Hello!",
        9,
        "provider",
    )


@pytest.mark.parametrize(
    "sent",
    [FIRST + REST[0], FIRST + b'data: {"id":"chatcmpl-1","choi'],
    ids=["no-finish", "cut-mid-event"],
)
async def test_stream_cut_after_start_is_interrupted(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider, sent: bytes
) -> None:
    httpserver_ipv4.expect_request("/v1/chat/completions").respond_with_data(
        sent, content_type="text/event-stream"
    )
    with pytest.raises(PalyraError) as info:
        [e async for e in provider.stream_chat(REQUEST)]
    assert info.value.envelope.failure_class is FailureClass.STREAM_INTERRUPTED


@pytest.mark.parametrize(
    "tail",
    [b"data: [DONE]\n", b"data: [DONE]", b"data: [DONE]\r\n"],
    ids=["one-newline", "no-newline", "crlf"],
)
async def test_complete_stream_closed_without_the_last_blank_line_keeps_answer_and_usage(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider, tail: bytes
) -> None:
    """Regression: this was stream_interrupted, dropping provider usage and forcing a failover."""
    body = FIRST + b"".join(REST[:-1]) + tail
    httpserver_ipv4.expect_request("/v1/chat/completions").respond_with_data(
        body, content_type="text/event-stream"
    )
    events = [e async for e in provider.stream_chat(REQUEST)]
    response = StreamAccumulator().extend(events).response()
    assert (response.content, response.finish_reason, response.usage.source) == (
        "Hello!",
        "stop",
        "provider",
    )
    assert response.usage.input_tokens == 9


async def test_stream_cut_inside_its_first_event_is_a_connection_failure(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider
) -> None:
    httpserver_ipv4.expect_request("/v1/chat/completions").respond_with_data(
        b'data: {"id":"chatcmpl-1","choi', content_type="text/event-stream"
    )
    with pytest.raises(PalyraError) as info:
        [e async for e in provider.stream_chat(REQUEST)]
    assert info.value.envelope.failure_class is FailureClass.CONNECTION


async def test_empty_stream_is_a_connection_failure(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider
) -> None:
    httpserver_ipv4.expect_request("/v1/chat/completions").respond_with_data(
        b"", content_type="text/event-stream"
    )
    with pytest.raises(PalyraError) as info:
        [e async for e in provider.stream_chat(REQUEST)]
    assert info.value.envelope.failure_class is FailureClass.CONNECTION


async def test_embeddings_post_the_batch_and_decode_base64(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider
) -> None:
    vectors = [[0.5, 1.0], [-2.0, 0.25]]
    encoded = [base64.b64encode(struct.pack("<2f", *v)).decode() for v in vectors]
    httpserver_ipv4.expect_request(
        "/v1/embeddings", method="POST", headers={"Authorization": f"Bearer {KEY}"}
    ).respond_with_json(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": encoded[1]},
                {"object": "embedding", "index": 0, "embedding": encoded[0]},
            ],
            "model": "emb",
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
    )
    request = EmbeddingRequest(model="emb", inputs=["a", "b"], encoding_format="base64")
    response = await provider.embed(request)
    assert response.vectors == vectors
    assert orjson.loads(httpserver_ipv4.log[0][0].get_data())["input"] == ["a", "b"]


async def test_transcription_sends_multipart_fields_and_file(
    httpserver_ipv4: HTTPServer, provider: OpenAIProvider
) -> None:
    def handler(request: Request) -> Response:
        assert request.form["model"] == "whisper-1"
        assert request.form["language"] == "en"
        assert request.form.getlist("timestamp_granularities[]") == ["segment", "word"]
        upload = request.files["file"]
        assert (upload.filename, upload.read()) == ("a.wav", b"RIFFdata")
        return Response(
            orjson.dumps({"text": "hi", "duration": 1.5, "language": "english"}),
            content_type="application/json",
        )

    httpserver_ipv4.expect_request("/v1/audio/transcriptions").respond_with_handler(handler)
    response = await provider.transcribe(
        TranscriptionRequest(
            model="whisper-1",
            audio=b"RIFFdata",
            filename="a.wav",
            language="en",
            response_format="verbose_json",
            timestamp_granularities=["segment", "word"],
        )
    )
    assert (response.text, response.duration_s) == ("hi", 1.5)


async def test_list_models(httpserver_ipv4: HTTPServer, provider: OpenAIProvider) -> None:
    httpserver_ipv4.expect_request("/v1/models", method="GET").respond_with_json(
        {"object": "list", "data": [{"id": "gpt-x", "object": "model", "owned_by": "me"}]}
    )
    models = await provider.list_models()
    assert [(m.id, m.provider, m.owned_by) for m in models] == [("gpt-x", "oai", "me")]


async def test_count_tokens_is_unsupported_with_a_way_out(provider: OpenAIProvider) -> None:
    with pytest.raises(PalyraError) as info:
        await provider.count_tokens(REQUEST)
    assert info.value.envelope.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    assert '"oai"' in str(info.value) and "estimate" in str(info.value)


async def test_connection_dropped_mid_stream_is_interrupted(client: httpx2.AsyncClient) -> None:
    """A raw server sends one chunk of a chunked body, then closes the socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            received = b""
            while b"\r\n\r\n" not in received:
                received += conn.recv(65536)
            head_end = received.index(b"\r\n\r\n") + 4
            length = next(
                int(line.split(b":", 1)[1])
                for line in received[:head_end].lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            )
            while len(received) < head_end + length:  # read it all: unread bytes would RST
                received += conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            conn.sendall(f"{len(FIRST):x}\r\n".encode() + FIRST + b"\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    provider = OpenAIProvider("oai", f"http://127.0.0.1:{port}/v1", client, api_key=KEY)
    events = []
    with pytest.raises(PalyraError) as info:
        async for event in provider.stream_chat(REQUEST):
            events.append(event)
    thread.join(timeout=3)
    listener.close()
    assert isinstance(events[0], MessageStart)
    assert info.value.envelope.failure_class is FailureClass.STREAM_INTERRUPTED
