import random

import pytest
from routing_fakes import (
    Fail,
    ProfileCredentials,
    Reply,
    ScriptedProvider,
    build_router,
    chat_request,
)

from palyra.config.schema import (
    BreakerConfig,
    ModelConfig,
    ModelProviderRegistryConfig,
    ProviderConfig,
)
from palyra.model import (
    EmbeddingRequest,
    FailureClass,
    ImagePart,
    Message,
    Role,
    TextPart,
)
from palyra.routing import Attempt, ManualClock, RoutingError

F = FailureClass


def config(**kw: object) -> ModelProviderRegistryConfig:
    base: dict[str, object] = {
        "providers": [
            ProviderConfig(id="openai-main", kind="openai"),
            ProviderConfig(id="claude", kind="anthropic"),
        ],
        "models": [
            ModelConfig(
                id="default",
                provider="openai-main",
                model="gpt-4.1",
                capabilities=["chat", "tools"],
                context_window=128_000,
                fallbacks=["sonnet"],
            ),
            ModelConfig(
                id="sonnet",
                provider="claude",
                model="claude-sonnet",
                capabilities=["chat", "tools", "vision"],
                context_window=200_000,
            ),
        ],
    }
    base.update(kw)
    return ModelProviderRegistryConfig.model_validate(base)


def setup(cfg: ModelProviderRegistryConfig | None = None, **kw: object):  # type: ignore[no-untyped-def]
    clock = ManualClock(1000.0)
    primary = ScriptedProvider("openai-main", clock)
    fallback = ScriptedProvider("claude", clock)
    router = build_router(
        cfg or config(), {"openai-main": primary, "claude": fallback}, clock, **kw
    )
    return clock, primary, fallback, router


async def test_hard_down_primary_is_left_after_one_attempt_and_the_fallback_answers_at_once() -> (
    None
):
    _clock, primary, fallback, router = setup()
    primary.default = lambda: Fail(F.CONNECTION)
    routed = await router.chat(chat_request())
    assert routed.response.model == "sonnet"
    assert routed.response.provider == "claude"
    assert [c.model for c in fallback.calls] == ["claude-sonnet"]
    attempts = routed.trail.attempts
    assert [(a.model_id, a.outcome) for a in attempts] == [
        ("default", "connection"),
        ("sonnet", "ok"),
    ]
    assert attempts[1].started_at - attempts[0].started_at == 0.0
    assert routed.trail.failovers == 1 and routed.trail.retries == 0
    assert routed.trail.header() == "openai-main/gpt-4.1:connection,claude/claude-sonnet:ok"


async def test_flaky_primary_with_healthy_fallback_almost_always_succeeds_cheaply() -> None:
    cfg = config(breaker=BreakerConfig(min_requests=50, error_ratio=0.5))
    clock, primary, fallback, router = setup(cfg)
    flaky = random.Random(2024)
    primary.default = lambda: Fail(F.UPSTREAM_UNAVAILABLE) if flaky.random() < 0.2 else Reply()
    ok = 0
    for _ in range(2000):
        try:
            await router.chat(chat_request())
            ok += 1
        except RoutingError:
            pass
        clock.advance(0.05)
    attempts = len(primary.calls) + len(fallback.calls)
    rate, per_request = ok / 2000, attempts / 2000
    print(f"\nsuccess {rate:.4f}, upstream attempts per request {per_request:.3f}")
    assert rate >= 0.999
    assert per_request <= 1.3


async def test_retry_after_on_the_last_target_is_waited_exactly() -> None:
    _clock, primary, _, router = setup(config(failover=False))
    primary.script = [Fail(F.RATE_LIMITED, retry_after_s=2.5), Reply("late")]
    routed = await router.chat(chat_request())
    assert routed.response.content == "late"
    assert primary.calls[1].at - primary.calls[0].at == 2.5
    assert routed.trail.attempts[1].waited_s == 2.5 and routed.trail.retries == 1


async def test_rate_limited_profile_is_rotated_and_the_caller_never_sees_the_429() -> None:
    creds = ProfileCredentials({"openai-main": ["work", "spare"]})
    clock, primary, fallback, router = setup(credentials=creds)
    primary.script = [Fail(F.RATE_LIMITED, retry_after_s=20), Reply("from spare")]
    routed = await router.chat(chat_request())
    assert routed.response.content == "from spare"
    assert [c.profile_id for c in primary.calls] == ["work", "spare"]
    assert fallback.calls == []
    assert creds.reports == [
        ("openai-main", "work", F.RATE_LIMITED),
        ("openai-main", "spare", None),
    ]
    assert clock.now() == 1000.0


async def test_revoked_key_disables_its_profile_for_later_requests() -> None:
    creds = ProfileCredentials({"openai-main": ["work", "spare"]})
    _, primary, _, router = setup(credentials=creds)
    primary.script = [Fail(F.AUTH_INVALID)]
    await router.chat(chat_request())
    await router.chat(chat_request())
    assert [c.profile_id for c in primary.calls] == ["work", "spare", "spare"]


async def test_open_breaker_sends_zero_requests_until_its_probe_and_a_failed_probe_waits_longer() -> (
    None
):
    cfg = config(
        failover=False,
        max_retries=0,
        breaker=BreakerConfig(consecutive_failures=2, cooldown_ladder_s=[30, 60]),
    )
    clock, primary, _, router = setup(cfg)
    primary.default = lambda: Fail(F.UPSTREAM_UNAVAILABLE)
    for _ in range(2):
        with pytest.raises(RoutingError):
            await router.chat(chat_request())
    assert len(primary.calls) == 2
    for _ in range(10):
        with pytest.raises(RoutingError) as caught:
            await router.chat(chat_request())
        assert caught.value.failure_class is F.CIRCUIT_OPEN
        clock.advance(2.9)
    assert len(primary.calls) == 2
    clock.advance(1.0)  # 30 s after opening: one probe
    with pytest.raises(RoutingError):
        await router.chat(chat_request())
    assert len(primary.calls) == 3
    clock.advance(59.0)
    with pytest.raises(RoutingError) as caught:
        await router.chat(chat_request())
    assert caught.value.failure_class is F.CIRCUIT_OPEN
    assert caught.value.envelope.retry_after_s == pytest.approx(1.0)
    clock.advance(1.0)
    primary.default = Reply
    routed = await router.chat(chat_request())
    assert routed.response.content == "hello" and len(primary.calls) == 4


async def test_open_breaker_on_the_primary_routes_straight_to_the_fallback() -> None:
    cfg = config(breaker=BreakerConfig(consecutive_failures=1))
    _, primary, fallback, router = setup(cfg)
    primary.default = lambda: Fail(F.TIMEOUT)
    await router.chat(chat_request())
    routed = await router.chat(chat_request())
    assert len(primary.calls) == 1 and len(fallback.calls) == 2
    assert [s.model_id for s in routed.trail.skipped] == ["default"]
    assert "circuit open" in routed.trail.skipped[0].reason


@pytest.mark.parametrize("fc", [F.INVALID_REQUEST, F.CONTENT_POLICY])
async def test_request_faults_never_fail_over(fc: FailureClass) -> None:
    _, primary, fallback, router = setup()
    primary.script = [Fail(fc)]
    with pytest.raises(RoutingError) as caught:
        await router.chat(chat_request())
    assert caught.value.failure_class is fc
    assert fallback.calls == [] and len(primary.calls) == 1
    assert len(caught.value.trail.attempts) == 1


async def test_context_too_long_moves_only_to_a_larger_window() -> None:
    models = [
        ModelConfig(
            id="big", provider="openai-main", context_window=128_000, fallbacks=["small", "huge"]
        ),
        ModelConfig(id="small", provider="claude", context_window=32_000),
        ModelConfig(id="huge", provider="claude", model="claude-1m", context_window=1_000_000),
    ]
    _, primary, fallback, router = setup(config(models=models))
    primary.script = [Fail(F.CONTEXT_TOO_LONG)]
    routed = await router.chat(chat_request("big"))
    assert routed.response.model == "huge"
    assert [c.model for c in fallback.calls] == ["claude-1m"]
    assert [s.model_id for s in routed.trail.skipped] == ["small"]


async def test_images_skip_a_primary_without_vision() -> None:
    _, primary, _fallback, router = setup()
    request = chat_request().model_copy(
        update={
            "messages": [
                Message(
                    role=Role.USER,
                    content=[TextPart(text="what?"), ImagePart(url="https://x/a.png")],
                )
            ]
        }
    )
    routed = await router.chat(request)
    assert routed.response.model == "sonnet" and primary.calls == []
    assert [(s.model_id, s.reason) for s in routed.trail.skipped] == [("default", "lacks vision")]


async def test_unknown_model_raises_not_found_with_the_trail() -> None:
    _, _, _, router = setup()
    with pytest.raises(RoutingError) as caught:
        await router.chat(chat_request("gpt-5"))
    assert caught.value.envelope.http_status == 404


async def test_a_slow_attempt_is_cut_at_the_request_timeout_and_the_fallback_gets_the_rest() -> (
    None
):
    cfg = config(request_timeout_ms=10_000, request_deadline_ms=15_000)
    clock, primary, fallback, router = setup(cfg)
    primary.script = [Reply(latency_s=60)]
    fallback.script = [Reply("quick", latency_s=1)]
    routed = await router.chat(chat_request())
    assert routed.response.content == "quick"
    assert [a.outcome for a in routed.trail.attempts] == ["timeout", "ok"]
    assert clock.now() - 1000.0 == 11.0


async def test_when_the_deadline_runs_out_the_timeout_names_the_model() -> None:
    cfg = config(request_timeout_ms=10_000)
    clock, primary, fallback, router = setup(cfg)
    primary.script = [Reply(latency_s=60)]
    fallback.script = [Reply(latency_s=60)]
    with pytest.raises(RoutingError) as caught:
        await router.chat(chat_request(), deadline_s=12)
    assert caught.value.failure_class is F.TIMEOUT
    assert 'model "sonnet"' in caught.value.envelope.message
    assert clock.now() - 1000.0 == 12.0


async def test_embeddings_route_to_a_model_with_the_capability_and_map_the_name() -> None:
    models = [
        ModelConfig(
            id="embed",
            provider="openai-main",
            model="text-embedding-3-small",
            capabilities=["embeddings"],
        ),
    ]
    _, primary, _, router = setup(config(models=models))
    routed = await router.embed(EmbeddingRequest(model="embed", inputs=["a", "b"]))
    assert routed.response.model == "embed" and len(routed.response.vectors) == 2
    assert primary.calls[0].model == "text-embedding-3-small"
    assert router.health.snapshot()[0].requests == 1


async def test_answers_name_the_configured_model_and_provider_whether_or_not_names_differ() -> None:
    models = [
        ModelConfig(id="gpt-4.1", provider="openai-main", fallbacks=["sonnet"]),
        ModelConfig(id="sonnet", provider="claude", model="claude-sonnet"),
    ]
    _, primary, fallback, router = setup(config(models=models))
    same = await router.chat(chat_request("gpt-4.1"))
    assert (same.response.model, same.response.provider) == ("gpt-4.1", "openai-main")
    assert primary.calls[-1].model == "gpt-4.1"
    primary.script.append(Fail(F.UPSTREAM_UNAVAILABLE))
    moved = await router.chat(chat_request("gpt-4.1"))
    assert (moved.response.model, moved.response.provider) == ("sonnet", "claude")
    assert fallback.calls[-1].model == "claude-sonnet"
    assert [a.upstream_model for a in moved.trail.attempts] == ["gpt-4.1", "claude-sonnet"]


async def test_every_field_of_the_recorded_attempts() -> None:
    creds = ProfileCredentials({"openai-main": ["work"]})
    clock, primary, _, router = setup(config(failover=False), credentials=creds)
    primary.script = [Fail(F.RATE_LIMITED, retry_after_s=2.0, latency_s=0.5), Reply(latency_s=1.5)]
    routed = await router.chat(chat_request())
    first, second = routed.trail.attempts
    assert first == Attempt(
        model_id="default",
        provider_id="openai-main",
        upstream_model="gpt-4.1",
        profile_id="work",
        outcome="rate_limited",
        failure_class=F.RATE_LIMITED,
        retry_index=0,
        started_at=1000.0,
        elapsed_s=0.5,
        waited_s=0.0,
    )
    assert second == Attempt(
        model_id="default",
        provider_id="openai-main",
        upstream_model="gpt-4.1",
        profile_id="work",
        outcome="ok",
        failure_class=None,
        retry_index=1,
        started_at=1002.5,
        elapsed_s=1.5,
        waited_s=2.0,
    )
    assert routed.trail.finished_at == clock.now() == 1004.0
