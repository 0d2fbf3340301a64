"""``explain_route``: where a request to a model name would go, in order, and why; what
``palyra models explain`` prints. A routing group is decided by the same ``GroupRouter`` the
router uses, with the load and latency it is given (a fresh one: nothing held, nothing measured).
"""

from __future__ import annotations

from dataclasses import dataclass

from palyra.model import Capability
from palyra.model.context import TaskClass
from palyra.routing.groups import GroupRouter
from palyra.routing.registry import RoutePlan
from palyra.routing.route_decision import RouteDecision


@dataclass(frozen=True, slots=True)
class RouteExplanation:
    name: str
    plan: RoutePlan
    decision: RouteDecision | None
    tiers: dict[str, tuple[str, str]]  # model id -> (cost tier, latency tier)

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.name,
            "group": self.decision is not None,
            "decision": None if self.decision is None else self.decision.to_dict(),
            "header": None if self.decision is None else self.decision.header(),
            "targets": [
                {
                    "position": i,
                    "model_id": t.model_id,
                    "provider": t.provider_id,
                    "upstream_model": t.upstream_model,
                    "cost_tier": self.tiers[t.model_id][0],
                    "latency_tier": self.tiers[t.model_id][1],
                }
                for i, t in enumerate(self.plan.targets, 1)
            ],
            "skipped": [{"model_id": m, "reason": why} for m, why in self.plan.skipped],
        }

    def lines(self) -> list[str]:
        """The explanation as text: the decision, then every target in failover order."""
        out: list[str] = []
        if self.decision is None:
            out.append(
                f"{self.name}: a model, not a routing group: tried first, then its fallbacks "
                "in order"
            )
        else:
            d = self.decision
            task = f", task {d.task} (from {d.task_source})" if d.task else ""
            out.append(f"{self.name}: routing group, strategy {d.strategy}{task}")
            for i, ranked in enumerate(d.ranked, 1):
                out.append(f"  {i}. {ranked.name}: {ranked.reason}")
            for ranked in d.excluded:
                out.append(f"  -  {ranked.name}: excluded, {ranked.reason}")
            for inner in d.nested:
                out.append(f"  group {inner.group}: {inner.header()}")
        out.append("failover order:")
        width = max(len(t.model_id) for t in self.plan.targets)
        for i, t in enumerate(self.plan.targets, 1):
            cost, latency = self.tiers[t.model_id]
            out.append(
                f"  {i}. {t.model_id.ljust(width)}  {t.provider_id}/{t.upstream_model}  "
                f"cost {cost}, latency {latency}"
            )
        for model_id, why in self.plan.skipped:
            out.append(f"  skipped {model_id}: {why}")
        if self.decision is not None:
            out.append(f"x-palyra-route: {self.decision.header()}")
        return out


async def explain_route(
    groups: GroupRouter,
    name: str,
    *,
    task: TaskClass | None = None,
    task_source: str | None = None,
    required: frozenset[Capability] = frozenset({"chat"}),
) -> RouteExplanation:
    """The route a request to ``name`` would take now; raises ``PalyraError`` as routing would
    (an unknown name, no capable model)."""
    registry = groups.registry
    plan = registry.plan(name, required)
    decision: RouteDecision | None = None
    if plan.group is not None:
        plan, decision = await groups.plan(name, plan, required, task, task_source)
    tiers: dict[str, tuple[str, str]] = {}
    for target in plan.targets:
        model = registry.model(target.model_id)
        tiers[target.model_id] = (model.cost_tier or "standard", model.latency_tier or "standard")
    return RouteExplanation(name, plan, decision, tiers)
