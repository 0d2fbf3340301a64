"""Property: whatever mix of retries, rotations and failovers happens, the deadline holds."""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from routing_fakes import (
    Fail,
    Outcome,
    ProfileCredentials,
    Reply,
    ScriptedProvider,
    build_router,
    chat_request,
)

from palyra.config.schema import ModelConfig, ModelProviderRegistryConfig, ProviderConfig
from palyra.model import FailureClass
from palyra.routing import ManualClock, RoutingError

latency = st.floats(min_value=0, max_value=40, allow_nan=False)
failure = st.builds(
    Fail,
    st.sampled_from(list(FailureClass)),
    st.one_of(st.none(), st.floats(min_value=0, max_value=50, allow_nan=False)),
    latency,
)
outcome = st.one_of(st.builds(Reply, st.just("ok"), latency), failure)
script = st.lists(outcome, max_size=12)


async def scenario(
    a: list[Outcome], b: list[Outcome], deadline_s: float, retries: int, failover: bool
) -> tuple[float, int, int]:
    cfg = ModelProviderRegistryConfig(
        providers=[ProviderConfig(id="p1", kind="openai"), ProviderConfig(id="p2", kind="openai")],
        models=[
            ModelConfig(id="m1", provider="p1", context_window=1000, fallbacks=["m2"]),
            ModelConfig(id="m2", provider="p2", context_window=2000),
        ],
        request_timeout_ms=15_000,
        max_retries=retries,
        retry_backoff_ms=500,
        failover=failover,
    )
    clock = ManualClock(50.0)
    providers = {
        "p1": ScriptedProvider("p1", clock, list(a), default=lambda: Fail(FailureClass.CONNECTION)),
        "p2": ScriptedProvider("p2", clock, list(b), default=lambda: Reply(latency_s=3)),
    }
    creds = ProfileCredentials({"p1": ["k1", "k2"]})
    router = build_router(cfg, providers, clock, credentials=creds)
    try:
        routed = await router.chat(chat_request("m1"), deadline_s=deadline_s)
        trail = routed.trail
    except RoutingError as exc:
        trail = exc.trail
    calls = len(providers["p1"].calls) + len(providers["p2"].calls)
    return clock.now() - 50.0, calls, len(trail.attempts)


@settings(max_examples=300, deadline=None)
@given(
    a=script,
    b=script,
    deadline_s=st.floats(min_value=0.5, max_value=90, allow_nan=False),
    retries=st.integers(min_value=0, max_value=4),
    failover=st.booleans(),
)
def test_total_simulated_time_never_exceeds_the_deadline(
    a: list[Outcome], b: list[Outcome], deadline_s: float, retries: int, failover: bool
) -> None:
    spent, calls, attempts = asyncio.run(scenario(a, b, deadline_s, retries, failover))
    assert spent <= deadline_s + 1e-9
    assert calls == attempts  # every upstream call is in the trail, no hidden retries
    assert attempts <= 3 * (retries + 1)  # (2 credentials + 1 fallback) x tries: no runaway
