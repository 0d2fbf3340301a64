"""How a routing group orders its members: pure functions of what is known about each member now.

Every strategy returns each member once, best first, with the reason it stands where it does;
ties keep the group's own order. The router then tries them in that order (failover as for any
model), skipping open breakers. ``task`` may leave members out (``excluded``), never the rest.

- ``ordered``: the group's order.
- ``weighted``: a random order drawn by weight (a member weighing 3 of 4 comes first 75% of
  the time; each following place is drawn among those left).
- ``least_busy``: fewest leases held on the member's provider, as a share of its
  ``max_concurrency``.
- ``lowest_latency``: measured p50 first; a member with fewer than ``MIN_SAMPLES`` calls in
  the health window, or none for ``explore_after_s``, goes before all measured ones (that is
  the exploration: it is measured again), and one that only failed goes last.
- ``cheapest``: the price of a request of 1M input and 0.5M output tokens (completion
  projected as half the prompt), cheapest first; an unknown price sorts last.
- ``task``: by the request's task class (see :data:`TASK_RULES`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from palyra.model.context import TaskClass

MIN_SAMPLES = 3
"""Calls a member needs in the health window before its p50 is trusted."""

COST_RANK = {"low": 0, "standard": 1, "premium": 2}
LATENCY_RANK = {"low": 0, "standard": 1, "high": 2}

TaskRule = str
TASK_RULES: Mapping[TaskClass, TaskRule] = {
    "interactive": "group order",
    "background": "cheapest tier",
    "summary": "cheapest tier",
    "extraction": "cheapest tier",
    "vision": "cheapest tier",
    "classification": "fastest tier",
}
"""What each task class asks of a ``task`` group: a person waiting gets the group's order (its
first member is the default model); background and auxiliary work gets the lowest cost tier
first (classification: the lowest latency tier, then cost), and never a member whose cost tier
is above the first member's."""


@dataclass(frozen=True, slots=True)
class Member:
    """What is known about one member when the group decides (a nested group shows its head)."""

    name: str
    weight: float = 1.0
    in_use: int = 0
    capacity: int | None = None
    p50_s: float | None = None
    calls: int = 0
    idle_s: float | None = None  # since its last call; None when never called
    price_per_m: float | None = None  # USD for 1M input + 0.5M output tokens; None: unknown
    price_note: str = ""
    cost_tier: str = "standard"
    latency_tier: str = "standard"


@dataclass(frozen=True, slots=True)
class Ranked:
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Ordering:
    ranked: tuple[Ranked, ...]
    excluded: tuple[Ranked, ...] = ()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.ranked]


def ordered(members: Sequence[Member]) -> Ordering:
    return Ordering(tuple(Ranked(m.name, f"position {i}") for i, m in enumerate(members, 1)))


def weighted(members: Sequence[Member], rng: random.Random) -> Ordering:
    total = sum(m.weight for m in members)
    left = list(members)
    ranked: list[Ranked] = []
    while left:
        pool = sum(m.weight for m in left)
        point = rng.random() * pool
        pick = left[-1]
        for member in left:
            point -= member.weight
            if point < 0:
                pick = member
                break
        left.remove(pick)
        share = pick.weight / total
        reason = f"weight {pick.weight:g} of {total:g} ({share:.0%})"
        ranked.append(Ranked(pick.name, ("drawn first, " if not ranked else "") + reason))
    return Ordering(tuple(ranked))


def least_busy(members: Sequence[Member]) -> Ordering:
    def load(m: Member) -> float:
        return m.in_use / m.capacity if m.capacity else float(m.in_use)

    order = sorted(enumerate(members), key=lambda im: (load(im[1]), im[0]))
    return Ordering(
        tuple(
            Ranked(m.name, f"{m.in_use} of {m.capacity or 'unlimited'} slots in use")
            for _, m in order
        )
    )


def lowest_latency(members: Sequence[Member], explore_after_s: float) -> Ordering:
    def place(m: Member) -> tuple[int, float, str]:
        if m.calls < MIN_SAMPLES:
            return 0, 0.0, f"explore: {m.calls} of {MIN_SAMPLES} calls measured"
        if m.idle_s is not None and m.idle_s >= explore_after_s:
            return 0, 0.0, f"explore: not called for {m.idle_s:.0f}s"
        if m.p50_s is None:
            return 2, 0.0, f"no successful call in {m.calls}"
        return 1, m.p50_s, f"p50 {m.p50_s * 1000:.0f}ms over {m.calls} calls"

    placed = sorted(
        ((place(m), i, m) for i, m in enumerate(members)), key=lambda x: (x[0][:2], x[1])
    )
    return Ordering(tuple(Ranked(m.name, p[2]) for p, _, m in placed))


def cheapest(members: Sequence[Member]) -> Ordering:
    def key(im: tuple[int, Member]) -> tuple[bool, float, int]:
        i, m = im
        return m.price_per_m is None, m.price_per_m or 0.0, i

    order = sorted(enumerate(members), key=key)
    return Ordering(
        tuple(
            Ranked(
                m.name,
                "price unknown (sorted last)"
                if m.price_per_m is None
                else f"${m.price_per_m:.4g} per 1M in + 0.5M out{m.price_note}",
            )
            for _, m in order
        )
    )


def by_task(members: Sequence[Member], task: TaskClass) -> Ordering:
    rule = TASK_RULES[task]
    if rule == "group order":
        return Ordering(
            tuple(
                Ranked(m.name, f"position {i}, cost {m.cost_tier}")
                for i, m in enumerate(members, 1)
            )
        )
    ceiling = COST_RANK[members[0].cost_tier]
    kept = [(i, m) for i, m in enumerate(members) if COST_RANK[m.cost_tier] <= ceiling]
    excluded = tuple(
        Ranked(m.name, f"cost {m.cost_tier} is above the default {members[0].name}'s")
        for m in members
        if COST_RANK[m.cost_tier] > ceiling
    )
    if rule == "fastest tier":

        def key(im: tuple[int, Member]) -> tuple[int, ...]:
            i, m = im
            return LATENCY_RANK[m.latency_tier], COST_RANK[m.cost_tier], i
    else:

        def key(im: tuple[int, Member]) -> tuple[int, ...]:
            i, m = im
            return COST_RANK[m.cost_tier], LATENCY_RANK[m.latency_tier], i

    ranked = tuple(
        Ranked(m.name, f"cost {m.cost_tier}, latency {m.latency_tier}")
        for _, m in sorted(kept, key=key)
    )
    return Ordering(ranked, excluded)
