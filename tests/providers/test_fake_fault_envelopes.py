"""Each fault the fake upstream can inject becomes the right ErrorEnvelope, for both adapters.

The whole path is real: the provider adapter, the guarded pooled client and the fake upstream
on loopback. Faults are consumed one per request, so each case is a single call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from palyra.model import ChatRequest, FailureClass, Message, PalyraError, StreamAccumulator
from palyra.providers.anthropic import AnthropicProvider
from palyra.providers.base import ModelProvider
from palyra.providers.openai import OpenAIProvider
from palyra.providers.upstream.guard import make_upstream_client
from palyra.testing import FakeUpstream
from palyra.testing.faults import Fault, FaultKind

KEY = "sk-fault-test-key-0123456789"
REQUEST = ChatRequest(model="fake-model", messages=[Message.text("user", "one two three four")])

ProviderMaker = Callable[[FakeUpstream, float], Awaitable[ModelProvider]]


async def _openai(fake: FakeUpstream, timeout_s: float) -> ModelProvider:
    client = make_upstream_client(allow_private=False, timeout_s=timeout_s, provider_id="oa")
    return OpenAIProvider("oa", fake.openai_base_url, client, api_key=KEY)


async def _anthropic(fake: FakeUpstream, timeout_s: float) -> ModelProvider:
    client = make_upstream_client(allow_private=False, timeout_s=timeout_s, provider_id="an")
    return AnthropicProvider("an", fake.anthropic_base_url, client, api_key=KEY)


PROVIDERS = {"openai": _openai, "anthropic": _anthropic}


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_keys={KEY}, stream_chunk_tokens=1) as server:
        yield server


async def _call(provider: ModelProvider, *, stream: bool) -> None:
    if stream:
        acc = StreamAccumulator()
        async for event in provider.stream_chat(REQUEST.model_copy(update={"stream": True})):
            acc.add(event)
        acc.response()
    else:
        await provider.chat(REQUEST)


CASES: list[tuple[Fault, bool, FailureClass, float]] = [
    # (fault, streamed?, expected class, client timeout)
    (Fault(FaultKind.SERVER_ERROR, status=500), False, FailureClass.UPSTREAM_UNAVAILABLE, 5.0),
    (Fault(FaultKind.SERVER_ERROR, status=503), True, FailureClass.UPSTREAM_UNAVAILABLE, 5.0),
    (Fault(FaultKind.RATE_LIMIT, retry_after_s=7), False, FailureClass.RATE_LIMITED, 5.0),
    (Fault(FaultKind.RATE_LIMIT, retry_after_s=7), True, FailureClass.RATE_LIMITED, 5.0),
    (Fault(FaultKind.HANG), False, FailureClass.TIMEOUT, 0.3),
    (Fault(FaultKind.SLOW_FIRST_BYTE, delay_ms=2000), True, FailureClass.TIMEOUT, 0.3),
    (Fault(FaultKind.CONNECTION_RESET), False, FailureClass.CONNECTION, 5.0),
    (Fault(FaultKind.CONNECTION_RESET), True, FailureClass.CONNECTION, 5.0),
    (Fault(FaultKind.STREAM_CUT, after_chunks=3), True, FailureClass.STREAM_INTERRUPTED, 5.0),
    (Fault(FaultKind.MALFORMED_JSON), False, FailureClass.MALFORMED_RESPONSE, 5.0),
    (Fault(FaultKind.CONTEXT_LENGTH), False, FailureClass.CONTEXT_TOO_LONG, 5.0),
    (Fault(FaultKind.INVALID_KEY), False, FailureClass.AUTH_INVALID, 5.0),
    (Fault(FaultKind.INVALID_KEY), True, FailureClass.AUTH_INVALID, 5.0),
]


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
@pytest.mark.parametrize(
    ("fault", "stream", "expected", "timeout_s"),
    CASES,
    ids=[f"{c[0].kind.value}-{'stream' if c[1] else 'whole'}" for c in CASES],
)
async def test_each_fault_becomes_the_right_envelope(
    fake: FakeUpstream,
    kind: str,
    fault: Fault,
    stream: bool,
    expected: FailureClass,
    timeout_s: float,
) -> None:
    provider = await PROVIDERS[kind](fake, timeout_s)
    fake.faults.push(fault)
    with pytest.raises(PalyraError) as caught:
        await _call(provider, stream=stream)
    envelope = caught.value.envelope
    assert envelope.failure_class is expected, envelope
    assert KEY not in envelope.message
    if fault.kind is FaultKind.RATE_LIMIT:
        assert envelope.retry_after_s == pytest.approx(7.0)
        assert envelope.retryable and envelope.failover_allowed
    assert not fake.faults.pending()


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_malformed_sse_mid_stream_is_not_a_silent_answer(
    fake: FakeUpstream, kind: str
) -> None:
    provider = await PROVIDERS[kind](fake, 5.0)
    fake.faults.push(Fault(FaultKind.MALFORMED_SSE, after_chunks=2))
    with pytest.raises(PalyraError) as caught:
        await _call(provider, stream=True)
    assert caught.value.envelope.failure_class in {
        FailureClass.MALFORMED_RESPONSE,
        FailureClass.STREAM_INTERRUPTED,
    }


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_a_healthy_call_after_the_faults_still_answers(fake: FakeUpstream, kind: str) -> None:
    provider = await PROVIDERS[kind](fake, 5.0)
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=502))
    with pytest.raises(PalyraError):
        await provider.chat(REQUEST)
    response = await provider.chat(REQUEST)
    assert response.content
    assert response.usage.source == "provider"
