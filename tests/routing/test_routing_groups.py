"""Routing groups through the router on simulated time and load: each strategy's choice, its
explanation (the ``x-palyra-route`` text) and failover within the chosen order."""

from __future__ import annotations

import random
from typing import Any

import pytest
from routing_fakes import Fail, Reply, ScriptedProvider, build_router, chat_request

from palyra.config.schema import ModelConfig, ModelProviderRegistryConfig, ProviderConfig
from palyra.model import ChatRequest, FailureClass, Message
from palyra.model.context import Principal, RequestContext
from palyra.routing import ManualClock, RoutingError
from palyra.routing.clock import SystemClock
from palyra.routing.groups import GroupRouter
from palyra.routing.leases_redis import RedisLeaseManager
from palyra.sharedstate import SharedStateLink
from redis_support import machine_redis_url

F = FailureClass
TIERS = {"a": ("premium", "standard"), "b": ("low", "high"), "c": ("low", "low")}


def config(groups: list[dict[str, Any]], **provider_options: Any) -> ModelProviderRegistryConfig:
    return ModelProviderRegistryConfig.model_validate(
        {
            "providers": [
                ProviderConfig(id=f"p-{name}", kind="openai", **provider_options) for name in "abc"
            ],
            "models": [
                ModelConfig(
                    id=name,
                    provider=f"p-{name}",
                    model=f"up-{name}",
                    cost_tier=cost,
                    latency_tier=latency,
                )
                for name, (cost, latency) in TIERS.items()
            ],
            "routing_groups": groups,
        }
    )


def setup(
    strategy: str, members: list[str] | None = None, **group: Any
) -> tuple[ManualClock, dict[str, ScriptedProvider], Any]:
    options = {"max_concurrency": 4} if strategy == "least_busy" else {}
    cfg = config(
        [{"id": "smart", "strategy": strategy, "members": members or ["a", "b", "c"], **group}],
        **options,
    )
    clock = ManualClock(1000.0)
    providers = {f"p-{n}": ScriptedProvider(f"p-{n}", clock) for n in "abc"}
    return clock, providers, build_router(cfg, providers, clock)


def answered(routed: Any) -> list[str]:
    return [a.model_id for a in routed.trail.attempts]


async def test_ordered_group_tries_members_in_its_order_and_fails_over() -> None:
    _clock, providers, router = setup("ordered", ["b", "a", "c"])
    providers["p-b"].default = lambda: Fail(F.CONNECTION)
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["b", "a"]
    assert routed.trail.route.header() == (
        "smart ordered: b (position 1) > a (position 2) > c (position 3)"
    )


async def test_weighted_group_draws_by_weight_and_explains_the_draw() -> None:
    _clock, _providers, router = setup("weighted", weights={"a": 3})
    firsts = [answered(await router.chat(chat_request("smart")))[0] for _ in range(400)]
    share = firsts.count("a") / len(firsts)
    assert 0.52 < share < 0.68  # weight 3 of 5
    routed = await router.chat(chat_request("smart"))
    head = routed.trail.route.ranked[0]
    assert head.name == answered(routed)[0]
    assert head.reason.startswith("drawn first, weight ")
    assert {r.name for r in routed.trail.route.ranked} == {"a", "b", "c"}


async def test_weighted_failover_follows_the_drawn_order() -> None:
    _clock, providers, router = setup("weighted", weights={"a": 1, "b": 1, "c": 1})
    for p in providers.values():
        p.default = lambda: Fail(F.UPSTREAM_UNAVAILABLE)
    providers["p-c"].default = Reply
    for _ in range(4):  # fewer failures than open a breaker
        routed = await router.chat(chat_request("smart"))
        drawn = [r.name for r in routed.trail.route.ranked]
        assert answered(routed) == drawn[: drawn.index("c") + 1]


async def test_least_busy_picks_the_provider_with_fewest_leases_held() -> None:
    _clock, _providers, router = setup("least_busy")
    held = [
        router.leases.try_acquire(router.registry.provider("p-a"), None, background=False),
        router.leases.try_acquire(router.registry.provider("p-a"), None, background=False),
        router.leases.try_acquire(router.registry.provider("p-b"), None, background=False),
    ]
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["c"]
    assert routed.trail.route.header() == (
        "smart least_busy: c (0 of 4 slots in use) > b (1 of 4 slots in use) > "
        "a (2 of 4 slots in use)"
    )
    for lease in held:
        assert lease is not None
        lease.release()
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["a"]  # all idle: the group's order


async def test_least_busy_fails_over_to_the_next_least_busy() -> None:
    _clock, providers, router = setup("least_busy")
    lease = router.leases.try_acquire(router.registry.provider("p-a"), None, background=False)
    providers["p-b"].default = lambda: Fail(F.RATE_LIMITED)
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["b", "c"]
    assert lease is not None
    lease.release()


async def test_lowest_latency_explores_unmeasured_members_then_prefers_the_fastest() -> None:
    clock, providers, router = setup("lowest_latency", explore_after_s=60)
    for name, latency in (("a", 0.3), ("b", 0.1), ("c", 0.2)):
        providers[f"p-{name}"].default = lambda latency=latency: Reply(latency_s=latency)
    seen = [answered(await router.chat(chat_request("smart")))[0] for _ in range(9)]
    assert seen == ["a"] * 3 + ["b"] * 3 + ["c"] * 3  # each measured MIN_SAMPLES times
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["b"]
    assert routed.trail.route.header() == (
        "smart lowest_latency: b (p50 100ms over 3 calls) > c (p50 200ms over 3 calls) > "
        "a (p50 300ms over 3 calls)"
    )
    for _ in range(3):
        await router.chat(chat_request("smart"))  # b again: a and c go idle
    clock.advance(61)  # nothing for a minute: every member is stale, explored in group order
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["a"]
    assert routed.trail.route.ranked[0].reason.startswith("explore: not called for 6")


async def test_lowest_latency_sorts_a_member_that_only_failed_last_and_fails_over() -> None:
    _clock, providers, router = setup("lowest_latency")
    providers["p-a"].default = lambda: Fail(F.UPSTREAM_UNAVAILABLE)
    providers["p-b"].default = lambda: Reply(latency_s=0.5)
    providers["p-c"].default = lambda: Reply(latency_s=0.05)
    for _ in range(4):
        await router.chat(chat_request("smart"))
    routed = await router.chat(chat_request("smart"))
    names = [r.name for r in routed.trail.route.ranked]
    assert names == ["c", "b", "a"]
    assert routed.trail.route.ranked[2].reason.startswith("no successful call in ")
    providers["p-c"].default = lambda: Fail(F.CONNECTION)
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["c", "b"]


class TablePrices:
    def __init__(self, prices: dict[str, float]) -> None:
        self.prices = prices

    def price_per_m(self, provider: ProviderConfig, model: ModelConfig) -> tuple[float | None, str]:
        return self.prices.get(model.id), ""


async def test_cheapest_orders_by_price_and_sorts_an_unknown_price_last() -> None:
    _clock, providers, router = setup("cheapest", ["a", "b", "c"])
    router.groups.prices = TablePrices({"a": 0.9, "c": 0.45})
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["c"]
    assert routed.trail.route.header() == (
        "smart cheapest: c ($0.45 per 1M in + 0.5M out) > a ($0.9 per 1M in + 0.5M out) > "
        "b (price unknown (sorted last))"
    )
    providers["p-c"].default = lambda: Fail(F.CONNECTION)
    routed = await router.chat(chat_request("smart"))
    assert answered(routed) == ["c", "a"]


def task_request(task: str | None) -> ChatRequest:
    headers = {} if task is None else {"x-palyra-task": task}
    return ChatRequest(model="smart", messages=[Message.text("user", "hi")], headers=headers)


async def test_task_background_from_the_header_takes_the_cheap_tier_never_a_costlier_one() -> None:
    _clock, providers, router = setup("task", ["b", "c", "a"])
    routed = await router.chat(task_request("background"))
    assert answered(routed) == ["c"]
    # b and c are both low cost, c is faster; a (premium) is above the first member's tier.
    assert routed.trail.route.header() == (
        "smart task task=background/header: c (cost low, latency low) > "
        "b (cost low, latency high); excluded a (cost premium is above the default b's)"
    )
    providers["p-b"].default = lambda: Fail(F.CONNECTION)
    providers["p-c"].default = lambda: Fail(F.CONNECTION)
    with pytest.raises(RoutingError) as caught:
        await router.chat(task_request("background"))
    tried = [a.model_id for a in caught.value.trail.attempts]
    assert tried[:2] == ["c", "b"] and set(tried) == {"c", "b"}  # b retried, never a
    assert any(s.reason.startswith("excluded: cost premium") for s in caught.value.trail.skipped)


async def test_task_classification_prefers_the_low_latency_tier() -> None:
    _clock, _providers, router = setup("task", ["a", "b", "c"])
    routed = await router.chat(task_request("classification"))
    # latency low, standard, high; a (premium) is the first member, so nothing is above it
    assert [r.name for r in routed.trail.route.ranked] == ["c", "a", "b"]
    assert answered(routed) == ["c"]


async def test_task_interactive_keeps_the_group_order_with_failover() -> None:
    _clock, providers, router = setup("task", ["a", "b", "c"])
    providers["p-a"].default = lambda: Fail(F.CONNECTION)
    routed = await router.chat(task_request(None))
    assert answered(routed) == ["a", "b"]
    assert routed.trail.route.task == "interactive"
    assert routed.trail.route.task_source == "group-default"


async def test_task_comes_from_the_agent_context_then_from_background_runs() -> None:
    _clock, _providers, router = setup("task", ["a", "b", "c"])
    agent = RequestContext(Principal("local", "me"), agent_id="digest", task="summary")
    routed = await router.chat(task_request(None), context=agent)
    assert (routed.trail.route.task, routed.trail.route.task_source) == ("summary", "agent")
    assert answered(routed) == ["c"]
    routed = await router.chat(task_request(None), background=True)
    assert (routed.trail.route.task, routed.trail.route.task_source) == (
        "background",
        "background-run",
    )
    bound = RequestContext(Principal("client_token", "t1"), agent_id="sorter")
    router.agent_tasks = {"sorter": "classification"}.get
    routed = await router.chat(task_request(None), context=bound)
    assert (routed.trail.route.task, routed.trail.route.task_source) == ("classification", "agent")


async def test_an_unknown_task_header_is_refused_naming_the_header_and_the_classes() -> None:
    _clock, providers, router = setup("task")
    with pytest.raises(RoutingError) as caught:
        await router.chat(task_request("bulk"))
    envelope = caught.value.envelope
    assert envelope.failure_class is F.INVALID_REQUEST
    assert envelope.message == (
        'x-palyra-task: unknown task class "bulk" (known: interactive, background, summary, '
        "classification, extraction, vision); send one of those or leave the header out"
    )
    assert all(not p.calls for p in providers.values())


async def test_open_breakers_are_skipped_within_the_chosen_order() -> None:
    _clock, providers, router = setup("task", ["b", "c", "a"])
    providers["p-c"].default = lambda: Fail(F.UPSTREAM_UNAVAILABLE)
    for _ in range(6):  # opens c's breaker (5 consecutive failures)
        await router.chat(task_request("background"))
    before = len(providers["p-c"].calls)
    routed = await router.chat(task_request("background"))
    assert answered(routed) == ["b"]
    assert len(providers["p-c"].calls) == before
    assert routed.trail.header() == "p-c/up-c:circuit_open,p-b/up-b:ok"


async def test_nested_group_is_ordered_by_its_own_strategy_and_stands_as_its_head() -> None:
    cfg = config(
        [
            {"id": "cheap", "strategy": "task", "members": ["a", "c", "b"]},
            {"id": "smart", "strategy": "ordered", "members": ["cheap", "a"]},
        ]
    )
    clock = ManualClock(0.0)
    providers = {f"p-{n}": ScriptedProvider(f"p-{n}", clock) for n in "abc"}
    router = build_router(cfg, providers, clock)
    routed = await router.chat(task_request("classification"))
    # cheap (classification: lowest latency tier first) stands for c, a, b; then smart's own a
    assert routed.trail.route.order == ("c", "a", "b")
    assert [r.name for r in routed.trail.route.ranked] == ["cheap", "a"]
    assert answered(routed) == ["c"]
    assert "[cheap task task=classification/header: c (cost low, latency low)" in (
        routed.trail.route.header()
    )


async def test_a_plain_model_gets_no_route_decision() -> None:
    _clock, _providers, router = setup("ordered")
    routed = await router.chat(chat_request("a"))
    assert routed.trail.route is None
    assert "route" not in routed.trail.to_dict()


def test_group_router_decides_the_same_way_for_the_explanation() -> None:
    _clock, _providers, router = setup("task", ["b", "c", "a"])
    group = router.registry.group("smart")
    explain = GroupRouter(
        router.registry, router.leases, router.health, router.clock, random.Random(1)
    )
    decision = explain.decide(group, "extraction", "--task")
    assert decision.order == ("c", "b")
    assert decision.to_dict()["excluded"] == [
        {"member": "a", "reason": "cost premium is above the default b's"}
    ]


@pytest.mark.redis
async def test_least_busy_counts_the_leases_other_replicas_hold(redis_namespace: str) -> None:
    cfg = config(
        [{"id": "smart", "strategy": "least_busy", "members": ["a", "b"]}], max_concurrency=4
    )
    links = [SharedStateLink(machine_redis_url(), namespace=redis_namespace) for _ in range(2)]
    here, there = (RedisLeaseManager(SystemClock(), link) for link in links)
    clock = ManualClock(0.0)
    providers = {f"p-{n}": ScriptedProvider(f"p-{n}", clock) for n in "abc"}
    router = build_router(cfg, providers, clock)
    router.groups = GroupRouter(router.registry, here, router.health, clock, random.Random(1))
    try:
        held = [
            await there.acquire(
                router.registry.provider("p-a"), None, background=False, timeout_s=1
            )
            for _ in range(2)
        ]
        routed = await router.chat(chat_request("smart"))
        assert answered(routed) == ["b"]  # p-a's two leases are held by the other replica
        assert routed.trail.route.ranked[1].reason == "2 of 4 slots in use"
        for lease in held:
            lease.release()
    finally:
        for manager in (here, there):
            await manager.aclose()
        for link in links:
            await link.aclose()
