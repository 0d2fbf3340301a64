"""``GroupRouter``: gathers what each member of a routing group looks like now (leases held,
measured latency, price, tiers) and asks the group's strategy for an order.

Only requests to a group name come here; a plain model id never does. The facts are read from
the router's own parts (``LeaseManager.in_use``, ``HealthTracker.target_latency``) and from a
``PriceSource``, so the same decision is made, and explained, in the daemon and in the CLI.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Protocol

from palyra.config.schema import ModelConfig, ProviderConfig, RoutingGroupConfig
from palyra.model import Capability
from palyra.model.context import TaskClass
from palyra.routing.clock import Clock
from palyra.routing.health import HealthTracker
from palyra.routing.leases import LeaseManager
from palyra.routing.registry import ModelRegistry, RoutePlan
from palyra.routing.route_decision import RouteDecision
from palyra.routing.strategies import (
    Member,
    Ordering,
    Ranked,
    by_task,
    cheapest,
    least_busy,
    lowest_latency,
    ordered,
    weighted,
)


class PriceSource(Protocol):
    """USD per 1M input + 0.5M output tokens of a model, and a note on where it came from;
    ``None`` when the price is not known."""

    def price_per_m(
        self, provider: ProviderConfig, model: ModelConfig
    ) -> tuple[float | None, str]: ...


class NoPrices:
    """Every price unknown: ``cheapest`` then keeps the group's order, and says so."""

    def price_per_m(self, provider: ProviderConfig, model: ModelConfig) -> tuple[float | None, str]:
        return None, ""


class GroupRouter:
    """Decides a group's order for one request (see :mod:`palyra.routing.strategies`)."""

    def __init__(
        self,
        registry: ModelRegistry,
        leases: LeaseManager,
        health: HealthTracker,
        clock: Clock,
        rng: random.Random,
        prices: PriceSource | None = None,
    ) -> None:
        self.registry = registry
        self._leases = leases
        self._health = health
        self._clock = clock
        self._rng = rng
        self.prices: PriceSource = prices or NoPrices()

    async def plan(
        self,
        name: str,
        plan: RoutePlan,
        required: frozenset[Capability],
        task: TaskClass | None,
        task_source: str | None,
    ) -> tuple[RoutePlan, RouteDecision]:
        """A group's plan reordered as its strategy decides now: the members in that order,
        then their fallbacks; excluded members are noted as skipped."""
        assert plan.group is not None
        loads = await self._loads(plan.group)
        decision = self.decide(plan.group, task, task_source, loads)
        ordered = self.registry.plan_order(name, list(decision.order), required)
        excluded = [(r.name, f"excluded: {r.reason}") for r in decision.excluded]
        return RoutePlan(ordered.targets, ordered.skipped + excluded, plan.group), decision

    async def _loads(self, group: RoutingGroupConfig) -> dict[str, int]:
        """Leases held per provider (every replica's, with shared leases) for the providers
        of ``least_busy`` groups in ``group``; empty when there are none."""
        loads: dict[str, int] = {}
        pending = [group]
        while pending:
            current = pending.pop()
            for member in current.members:
                inner = self.registry.group(member)
                if inner is not None:
                    pending.append(inner)
                elif current.strategy == "least_busy":
                    provider = self.registry.resolve(member).provider
                    if provider not in loads:
                        loads[provider] = await self._leases.held(provider)
        return loads

    def decide(
        self,
        group: RoutingGroupConfig,
        task: TaskClass | None,
        task_source: str | None,
        loads: Mapping[str, int] | None = None,
    ) -> RouteDecision:
        """The order of ``group``'s members now; nested groups decide first (their head model
        stands for them). ``loads``: leases held per provider (else this process's count)."""
        now = self._clock.now()
        nested: list[RouteDecision] = []
        heads: list[tuple[str, list[str]]] = []  # member -> the model ids it stands for
        for name in group.members:
            inner = self.registry.group(name)
            if inner is None:
                heads.append((name, [self.registry.resolve(name).id]))
            else:
                decided = self.decide(inner, task, task_source, loads)
                nested.append(decided)
                heads.append((name, list(decided.order)))
        members = [self._member(group, name, models[0], now, loads) for name, models in heads]
        ordering = self._order(group, members, task or group.task)
        standing = dict(heads)
        order: list[str] = []
        for ranked in ordering.ranked:
            order += [m for m in standing[ranked.name] if m not in order]
        shown_task = (task or group.task) if group.strategy == "task" else None
        return RouteDecision(
            group.id,
            group.strategy,
            ordering.ranked,
            ordering.excluded,
            tuple(order),
            shown_task,
            (task_source or "group-default") if shown_task is not None else None,
            tuple(nested),
        )

    def _order(self, group: RoutingGroupConfig, members: list[Member], task: TaskClass) -> Ordering:
        strategy = group.strategy
        if strategy == "weighted":
            return weighted(members, self._rng)
        if strategy == "least_busy":
            return least_busy(members)
        if strategy == "lowest_latency":
            return lowest_latency(members, group.explore_after_s)
        if strategy == "cheapest":
            return cheapest(members)
        if strategy == "task":
            return by_task(members, task)
        return ordered(members)

    def _member(
        self,
        group: RoutingGroupConfig,
        name: str,
        model_id: str,
        now: float,
        loads: Mapping[str, int] | None,
    ) -> Member:
        model = self.registry.model(model_id)
        provider = self.registry.provider(model.provider)
        strategy = group.strategy
        weight = group.weights.get(name, 1.0)
        if strategy == "least_busy":
            return Member(
                name,
                weight,
                in_use=loads[provider.id]
                if loads and provider.id in loads
                else self._leases.in_use(provider.id),
                capacity=provider.max_concurrency,
            )
        if strategy == "lowest_latency":
            seen = self._health.target_latency(provider.id, model.id)
            idle = None if seen.last_call_at is None else now - seen.last_call_at
            return Member(name, weight, p50_s=seen.p50_s, calls=seen.calls, idle_s=idle)
        if strategy == "cheapest":
            price, note = self.prices.price_per_m(provider, model)
            return Member(name, weight, price_per_m=price, price_note=note)
        return Member(
            name,
            weight,
            cost_tier=model.cost_tier or "standard",
            latency_tier=model.latency_tier or "standard",
        )


__all__ = ["GroupRouter", "NoPrices", "PriceSource", "Ranked"]
