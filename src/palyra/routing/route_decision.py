"""A routing group's decision for one request, as the ``x-palyra-route`` header and
``palyra models explain`` show it: the candidates in the order they will be tried, and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from palyra.model.context import TaskClass
from palyra.routing.strategies import Ranked


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """``ranked``: the group's members best first; ``excluded``: left out (``task`` only);
    ``order``: the model ids those members stand for, before fallbacks; ``nested``: the
    decisions of member groups."""

    group: str
    strategy: str
    ranked: tuple[Ranked, ...]
    excluded: tuple[Ranked, ...] = ()
    order: tuple[str, ...] = ()
    task: TaskClass | None = None
    task_source: str | None = None
    nested: tuple[RouteDecision, ...] = field(default=())

    def header(self) -> str:
        """``smart task=background/header: mini (cost low, ...) > big (...); excluded ...``."""
        head = f"{self.group} {self.strategy}"
        if self.task is not None:
            head += f" task={self.task}/{self.task_source}"
        text = f"{head}: " + " > ".join(f"{r.name} ({r.reason})" for r in self.ranked)
        if self.excluded:
            text += "; excluded " + ", ".join(f"{r.name} ({r.reason})" for r in self.excluded)
        for inner in self.nested:
            text += f"; [{inner.header()}]"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "strategy": self.strategy,
            "task": self.task,
            "task_source": self.task_source,
            "candidates": [
                {"member": r.name, "position": i, "reason": r.reason}
                for i, r in enumerate(self.ranked, 1)
            ],
            "excluded": [{"member": r.name, "reason": r.reason} for r in self.excluded],
            "order": list(self.order),
            "nested": [inner.to_dict() for inner in self.nested],
        }
