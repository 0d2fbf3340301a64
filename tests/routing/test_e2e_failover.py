"""End to end: real fake upstreams on loopback, the real adapters, the real Router.

Each test builds the runtime with ``build_runtime`` from a ``PalyraConfig``, exactly as the
daemon does, and counts what the fakes actually received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from e2e_support import (
    KEY,
    KEY_ENV,
    anthropic_provider,
    ask,
    free_port,
    openai_provider,
    two_model_config,
)

from palyra.config.schema import BreakerConfig
from palyra.model import FailureClass, MessageEnd, MessageStart, PalyraError, TextDelta
from palyra.routing import RoutingError
from palyra.routing.assembly import build_runtime
from palyra.testing import FakeUpstream, Fault, FaultKind


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def anthropic_fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={KEY}) as fake:
        yield fake


@pytest.fixture
def openai_fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={KEY}) as fake:
        yield fake


def chat_posts(fake: FakeUpstream) -> int:
    return sum(1 for r in fake.requests if r.path in ("/v1/messages", "/v1/chat/completions"))


async def test_hard_down_primary_is_answered_by_the_fallback_after_one_connection_failure(
    openai_fake: FakeUpstream,
) -> None:
    down = anthropic_provider("claude-down", f"http://127.0.0.1:{free_port()}")
    cfg = two_model_config(down, openai_provider("openai-up", openai_fake.openai_base_url))
    async with build_runtime(cfg) as runtime:
        routed = await runtime.router.chat(ask("where are you"))
    assert routed.response.content == "You said: where are you"
    assert routed.response.model == "backup"
    outcomes = [(a.provider_id, a.failure_class) for a in routed.trail.attempts]
    assert outcomes == [("claude-down", FailureClass.CONNECTION), ("openai-up", None)]
    assert routed.trail.failovers == 1
    assert chat_posts(openai_fake) == 1


async def test_primary_failing_one_in_five_with_5xx_still_serves_999_per_mille_cheaply(
    anthropic_fake: FakeUpstream, openai_fake: FakeUpstream
) -> None:
    anthropic_fake.settings.fail_rate = 0.2
    anthropic_fake.settings.fail_status = 503
    # A breaker that never trips keeps the primary in play, so every request shows failover.
    patient = BreakerConfig(consecutive_failures=1000, min_requests=100_000)
    cfg = two_model_config(
        anthropic_provider("claude", anthropic_fake.anthropic_base_url),
        openai_provider("openai", openai_fake.openai_base_url),
        breaker=patient,
    )
    total, batch = 2000, 250
    ok = 0
    started = time.perf_counter()
    async with build_runtime(cfg) as runtime:
        for _ in range(total // batch):
            results = await asyncio.gather(
                *(runtime.router.chat(ask("ping")) for _ in range(batch)), return_exceptions=True
            )
            ok += sum(1 for r in results if not isinstance(r, BaseException))
    elapsed = time.perf_counter() - started
    primary, fallback = chat_posts(anthropic_fake), chat_posts(openai_fake)
    attempts_per_request = (primary + fallback) / total
    print(
        f"\n{total} requests in {elapsed:.2f}s: {ok} ok ({ok / total:.2%}), primary {primary} "
        f"calls, fallback {fallback} calls, {attempts_per_request:.3f} upstream attempts/request"
    )
    assert ok / total >= 0.999
    assert attempts_per_request <= 1.3
    assert primary == total  # every request tried the primary first ...
    assert 0.1 * total < fallback < 0.3 * total  # ... and about one in five moved on


async def test_429_retry_after_is_waited_then_the_same_target_answers(
    anthropic_fake: FakeUpstream,
) -> None:
    cfg = two_model_config(anthropic_provider("claude", anthropic_fake.anthropic_base_url), None)
    anthropic_fake.faults.push(Fault(FaultKind.RATE_LIMIT, retry_after_s=0.05))
    async with build_runtime(cfg) as runtime:
        started = time.perf_counter()
        routed = await runtime.router.chat(ask())
        elapsed = time.perf_counter() - started
    first, second = routed.trail.attempts
    assert first.failure_class is FailureClass.RATE_LIMITED
    assert second.outcome == "ok" and second.retry_index == 1
    assert second.waited_s == pytest.approx(0.05, abs=0.005)
    assert elapsed >= 0.05
    assert chat_posts(anthropic_fake) == 2


async def test_invalid_key_is_auth_invalid_and_never_retried_on_the_same_credential(
    anthropic_fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    cfg = two_model_config(
        anthropic_provider("claude", anthropic_fake.anthropic_base_url), None, max_retries=3
    )
    async with build_runtime(cfg) as runtime:
        with pytest.raises(RoutingError) as info:
            await runtime.router.chat(ask())
    assert info.value.failure_class is FailureClass.AUTH_INVALID
    assert [a.failure_class for a in info.value.trail.attempts] == [FailureClass.AUTH_INVALID]
    assert chat_posts(anthropic_fake) == 1
    assert "sk-wrong" not in str(info.value)


async def test_invalid_key_on_the_primary_fails_over_to_a_fallback_with_a_good_key(
    anthropic_fake: FakeUpstream, openai_fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALYRA_E2E_BAD_KEY", "sk-wrong")
    primary = anthropic_provider("claude", anthropic_fake.anthropic_base_url).model_copy(
        update={"api_key": "env:PALYRA_E2E_BAD_KEY"}
    )
    cfg = two_model_config(primary, openai_provider("openai", openai_fake.openai_base_url))
    async with build_runtime(cfg) as runtime:
        routed = await runtime.router.chat(ask())
    assert [a.outcome for a in routed.trail.attempts] == ["auth_invalid", "ok"]
    assert chat_posts(anthropic_fake) == 1


async def collect(stream: object) -> list[object]:
    return [event async for event in stream]  # type: ignore[attr-defined]


async def test_stream_cut_after_it_started_is_stream_interrupted_not_a_second_answer(
    anthropic_fake: FakeUpstream, openai_fake: FakeUpstream
) -> None:
    cfg = two_model_config(
        anthropic_provider("claude", anthropic_fake.anthropic_base_url),
        openai_provider("openai", openai_fake.openai_base_url),
    )
    anthropic_fake.faults.push(Fault(FaultKind.STREAM_CUT, after_chunks=3))
    received: list[object] = []
    async with build_runtime(cfg) as runtime:
        stream = runtime.router.stream_chat(ask("tell me a fairly long story please"))
        with pytest.raises(PalyraError) as info:
            async for event in stream:
                received.append(event)
    assert info.value.failure_class is FailureClass.STREAM_INTERRUPTED
    assert isinstance(received[0], MessageStart)
    assert not any(isinstance(e, MessageEnd) for e in received)
    assert [a.outcome for a in stream.trail.attempts] == ["stream_interrupted"]
    assert chat_posts(openai_fake) == 0


@pytest.mark.parametrize(
    "fault",
    [Fault(FaultKind.SERVER_ERROR, status=503), Fault(FaultKind.CONNECTION_RESET)],
    ids=["503", "reset"],
)
async def test_stream_failing_before_its_first_byte_fails_over_whole(
    anthropic_fake: FakeUpstream, openai_fake: FakeUpstream, fault: Fault
) -> None:
    cfg = two_model_config(
        anthropic_provider("claude", anthropic_fake.anthropic_base_url),
        openai_provider("openai", openai_fake.openai_base_url),
    )
    anthropic_fake.faults.push(fault)
    async with build_runtime(cfg) as runtime:
        stream = runtime.router.stream_chat(ask("stream me"))
        events = await collect(stream)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "You said: stream me"
    assert isinstance(events[0], MessageStart) and events[0].model == "backup"
    assert [a.provider_id for a in stream.trail.attempts] == ["claude", "openai"]
    assert stream.trail.attempts[-1].outcome == "ok"
