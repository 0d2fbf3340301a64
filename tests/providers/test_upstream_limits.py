"""Upstream answers past their bounds are refused: whole bodies, single stream events, and
compressed bodies that would expand past the bound. A long stream of small events is fine."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterator

import httpx2
import pytest

from palyra.model import ChatRequest, FailureClass, Message, PalyraError, Role, StreamAccumulator
from palyra.providers.anthropic import AnthropicProvider
from palyra.providers.base import ModelProvider
from palyra.providers.openai import OpenAIProvider
from palyra.providers.upstream.client import _decode
from palyra.providers.upstream.guard import make_upstream_client
from palyra.providers.upstream.limits import UpstreamLimits, UpstreamTooLarge
from palyra.providers.upstream.sse import SSEDecoder
from palyra.testing import FakeUpstream, Fault, FaultKind

LIMITS = UpstreamLimits(max_body_bytes=64 * 1024, max_event_bytes=16 * 1024)


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


def _client(limits: UpstreamLimits = LIMITS) -> httpx2.AsyncClient:
    return make_upstream_client(allow_private=True, timeout_s=10, limits=limits)


def _provider(kind: str, fake: FakeUpstream, client: httpx2.AsyncClient) -> ModelProvider:
    if kind == "openai":
        return OpenAIProvider("oa", fake.openai_base_url, client, api_key="k-limits-test")
    return AnthropicProvider("an", fake.anthropic_base_url, client, api_key="k-limits-test")


def _request(kind: str, words: int = 6) -> ChatRequest:
    model = "gpt-4o-mini" if kind == "openai" else "claude-haiku-4-5"
    text = " ".join(f"w{i}" for i in range(words))
    return ChatRequest(
        model=model, messages=[Message.text(Role.USER, text)], max_output_tokens=words + 50
    )


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_whole_answer_past_the_limit_is_refused_and_its_connection_dropped(
    kind: str, fake: FakeUpstream
) -> None:
    client = _client()
    provider = _provider(kind, fake, client)
    fake.faults.push(Fault(FaultKind.OVERSIZED, size_bytes=2 * 1024 * 1024))
    with pytest.raises(PalyraError) as info:
        await provider.chat(_request(kind))
    envelope = info.value.envelope
    assert envelope.failure_class is FailureClass.MALFORMED_RESPONSE
    assert envelope.code == "upstream_too_large"
    assert "larger than 65536 bytes" in envelope.message
    assert "max_upstream_body_bytes" in envelope.message
    pool = client._transport._inner  # type: ignore[attr-defined]
    assert pool.connections == (0, 0)  # closed, not pooled with 2 MB unread on the wire
    fake.faults.push(Fault(FaultKind.OVERSIZED, size_bytes=1000))  # under the limit: fine
    assert (await provider.chat(_request(kind))).content
    await client.aclose()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_one_stream_event_past_the_limit_breaks_the_stream_with_the_setting_named(
    kind: str, fake: FakeUpstream
) -> None:
    client = _client()
    provider = _provider(kind, fake, client)
    fake.faults.push(Fault(FaultKind.OVERSIZED, size_bytes=100 * 1024, after_chunks=2))
    seen = []
    with pytest.raises(PalyraError) as info:
        async for event in provider.stream_chat(_request(kind)):
            seen.append(event)
    envelope = info.value.envelope
    assert seen  # it broke after it started
    assert envelope.failure_class is FailureClass.STREAM_INTERRUPTED
    assert "larger than 16384 bytes" in envelope.message
    assert "max_upstream_event_bytes" in envelope.message
    await client.aclose()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_stream_longer_than_the_body_limit_is_read_whole(
    kind: str, fake: FakeUpstream
) -> None:
    client = _client(UpstreamLimits(max_body_bytes=2048, max_event_bytes=2048))
    provider = _provider(kind, fake, client)
    acc = StreamAccumulator()
    async for event in provider.stream_chat(_request(kind, words=400)):
        acc.add(event)
    assert len(acc.response().content) > 1000
    with pytest.raises(PalyraError, match="max_upstream_body_bytes"):
        await provider.chat(_request(kind, words=400))  # the same answer whole is refused
    await client.aclose()


def test_a_compressed_body_that_expands_past_the_limit_is_refused() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(UpstreamTooLarge, match="larger than 1000000 bytes"):
        _decode(bomb, b"gzip", 1_000_000)
    with pytest.raises(UpstreamTooLarge):
        _decode(zlib.compress(b"\0" * 10_000_000), b"deflate", 1_000_000)
    assert _decode(gzip.compress(b"ok" * 10), b"gzip", 20) == b"ok" * 10


def test_the_sse_decoder_bounds_one_event_not_the_stream() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    for _ in range(50):  # 50 small events: 2 KB in all
        assert [e.data for e in decoder.feed(b"data: " + b"x" * 30 + b"\n\n")] == ["x" * 30]
    with pytest.raises(UpstreamTooLarge, match="larger than 100 bytes"):
        decoder.feed(b"data: " + b"y" * 60 + b"\ndata: " + b"y" * 60 + b"\n")  # two lines
    unfinished = SSEDecoder(max_event_bytes=100)
    unfinished.feed(b"data: " + b"z" * 60)
    with pytest.raises(UpstreamTooLarge):
        unfinished.feed(b"z" * 60)  # one line, no end yet, already past the bound


async def test_a_chunked_answer_without_a_length_is_cut_off_as_it_passes_the_limit() -> None:
    """No content-length to refuse up front: the bound is counted as the body arrives, and the
    server sees the connection closed long before it has sent everything."""
    sent = 0
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(4096)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        piece = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
        try:
            for _ in range(1000):  # 16 MB offered
                writer.write(piece)
                await writer.drain()
                sent += 16384
        except ConnectionError:
            pass
        finally:
            closed.set()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = _client()
    provider = OpenAIProvider("oa", f"http://127.0.0.1:{port}/v1", client, api_key="k-limits")
    with pytest.raises(PalyraError, match="larger than 65536 bytes") as info:
        await provider.chat(_request("openai"))
    assert info.value.envelope.failure_class is FailureClass.MALFORMED_RESPONSE
    await asyncio.wait_for(closed.wait(), 10)
    assert sent < 8 * 1024 * 1024  # it stopped reading: the rest was never taken
    server.close()
    await client.aclose()
