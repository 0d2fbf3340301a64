import pytest
from routing_fakes import Events, Fail, Reply, ScriptedProvider, build_router, chat_request

from palyra.config.schema import ModelConfig, ModelProviderRegistryConfig, ProviderConfig
from palyra.model import FailureClass, MessageStart, PalyraError, StreamEvent, TextDelta
from palyra.routing import ManualClock, RoutingError

F = FailureClass
CFG = ModelProviderRegistryConfig(
    providers=[
        ProviderConfig(id="openai-main", kind="openai"),
        ProviderConfig(id="claude", kind="anthropic"),
    ],
    models=[
        ModelConfig(id="default", provider="openai-main", model="gpt-4.1", fallbacks=["sonnet"]),
        ModelConfig(id="sonnet", provider="claude", model="claude-sonnet"),
    ],
    request_timeout_ms=5_000,
)


def setup() -> tuple[ManualClock, ScriptedProvider, ScriptedProvider, object]:
    clock = ManualClock()
    primary = ScriptedProvider("openai-main", clock)
    fallback = ScriptedProvider("claude", clock)
    return (
        clock,
        primary,
        fallback,
        build_router(CFG, {"openai-main": primary, "claude": fallback}, clock),
    )


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_a_stream_failing_before_its_first_event_fails_over() -> None:
    _, primary, fallback, router = setup()
    primary.script = [Fail(F.CONNECTION)]
    fallback.script = [Events(("from ", "claude"))]
    stream = router.stream_chat(chat_request())  # type: ignore[attr-defined]
    events = [e async for e in stream]
    assert text_of(events) == "from claude"
    first = events[0]
    assert isinstance(first, MessageStart) and first.model == "sonnet"
    assert fallback.calls[0].model == "claude-sonnet"
    assert stream.trail.header() == "openai-main/gpt-4.1:connection,claude/claude-sonnet:ok"


async def test_a_stream_breaking_after_its_first_event_raises_stream_interrupted() -> None:
    _, primary, fallback, router = setup()
    primary.script = [Events(("partial",), then=Fail(F.CONNECTION))]
    stream = router.stream_chat(chat_request())  # type: ignore[attr-defined]
    seen: list[StreamEvent] = []
    with pytest.raises(PalyraError) as caught:
        async for event in stream:
            seen.append(event)
    assert text_of(seen) == "partial"
    env = caught.value.envelope
    assert env.failure_class is F.STREAM_INTERRUPTED and env.code == "connection"
    assert "incomplete" in env.message and '"default"' in env.message
    assert fallback.calls == []
    assert [a.outcome for a in stream.trail.attempts] == ["connection"]


async def test_a_stalled_stream_is_cut_at_the_request_timeout() -> None:
    clock, primary, _, router = setup()
    primary.script = [Events(("a", "b"), gap_s=60)]
    with pytest.raises(PalyraError) as caught:
        async for _ in router.stream_chat(chat_request()):  # type: ignore[attr-defined]
            pass
    assert caught.value.failure_class is F.STREAM_INTERRUPTED
    assert caught.value.envelope.code == "timeout"
    assert clock.now() == 5.0


async def test_a_stream_no_candidate_can_start_raises_the_last_error() -> None:
    _, primary, fallback, router = setup()
    primary.script = [Fail(F.CONNECTION)]
    fallback.script = [Fail(F.UPSTREAM_UNAVAILABLE)] * 3
    with pytest.raises(RoutingError) as caught:
        async for _ in router.stream_chat(chat_request()):  # type: ignore[attr-defined]
            pass
    assert caught.value.failure_class is F.UPSTREAM_UNAVAILABLE
    assert caught.value.trail.failovers == 1


async def test_a_stream_left_early_by_the_caller_frees_its_lease() -> None:
    cfg = CFG.model_copy(
        update={
            "providers": [
                ProviderConfig(id="openai-main", kind="openai", max_concurrency=1),
                ProviderConfig(id="claude", kind="anthropic"),
            ]
        }
    )
    clock = ManualClock()
    primary = ScriptedProvider("openai-main", clock, default=lambda: Events(("x", "y", "z")))
    router = build_router(
        cfg, {"openai-main": primary, "claude": ScriptedProvider("claude", clock)}, clock
    )
    stream = router.stream_chat(chat_request())
    events = stream.__aiter__()
    await anext(events)
    assert router.leases.in_use("openai-main") == 1
    await events.aclose()  # type: ignore[attr-defined]
    assert router.leases.in_use("openai-main") == 0
    routed = await router.chat(chat_request())
    assert routed.response.content == "xyz"


async def test_a_whole_reply_outcome_streams_as_one_delta() -> None:
    _, primary, _, router = setup()
    primary.script = [Reply("whole")]
    events = [e async for e in router.stream_chat(chat_request())]  # type: ignore[attr-defined]
    assert text_of(events) == "whole"
