"""The rules every strategy keeps, for any members: each member once (``task`` may only leave out
members costlier than the first), best first by the strategy's own measure, ties in group order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.model.context import TASK_CLASSES
from palyra.routing.strategies import (
    COST_RANK,
    LATENCY_RANK,
    MIN_SAMPLES,
    Member,
    by_task,
    cheapest,
    least_busy,
    lowest_latency,
    ordered,
    weighted,
)

member = st.builds(
    Member,
    name=st.just(""),
    weight=st.floats(0.01, 100),
    in_use=st.integers(0, 8),
    capacity=st.one_of(st.none(), st.integers(1, 8)),
    p50_s=st.one_of(st.none(), st.floats(0.001, 30)),
    calls=st.integers(0, 300),
    idle_s=st.one_of(st.none(), st.floats(0, 1000)),
    price_per_m=st.one_of(st.none(), st.floats(0, 100)),
    cost_tier=st.sampled_from(list(COST_RANK)),
    latency_tier=st.sampled_from(list(LATENCY_RANK)),
)
groups = st.lists(member, min_size=1, max_size=8).map(
    lambda ms: [Member(**{**_fields(m), "name": f"m{i}"}) for i, m in enumerate(ms)]
)


def _fields(m: Member) -> dict[str, object]:
    return {name: getattr(m, name) for name in Member.__slots__}


def _names(members: list[Member]) -> list[str]:
    return [m.name for m in members]


@given(groups, st.integers(0, 2**32))
def test_every_strategy_but_task_keeps_each_member_exactly_once(
    members: list[Member], seed: int
) -> None:
    for ordering in (
        ordered(members),
        weighted(members, random.Random(seed)),
        least_busy(members),
        lowest_latency(members, 300.0),
        cheapest(members),
    ):
        assert sorted(ordering.names) == sorted(_names(members))
        assert not ordering.excluded
        assert all(r.reason for r in ordering.ranked)


@given(groups)
def test_cheapest_is_sorted_by_price_with_unknown_last_and_ties_in_group_order(
    members: list[Member],
) -> None:
    by_name = {m.name: (i, m) for i, m in enumerate(members)}
    keys = [
        (m.price_per_m is None, m.price_per_m or 0.0, i)
        for i, m in (by_name[n] for n in cheapest(members).names)
    ]
    assert keys == sorted(keys)


@given(groups)
def test_least_busy_never_puts_a_busier_member_first(members: list[Member]) -> None:
    def load(m: Member) -> float:
        return m.in_use / m.capacity if m.capacity else float(m.in_use)

    by_name = {m.name: m for m in members}
    loads = [load(by_name[n]) for n in least_busy(members).names]
    assert loads == sorted(loads)


@given(groups, st.floats(1, 600))
def test_lowest_latency_explores_before_measured_and_measured_by_p50(
    members: list[Member], explore_after_s: float
) -> None:
    by_name = {m.name: m for m in members}
    placed = [by_name[n] for n in lowest_latency(members, explore_after_s).names]

    def phase(m: Member) -> int:
        if m.calls < MIN_SAMPLES or (m.idle_s is not None and m.idle_s >= explore_after_s):
            return 0
        return 2 if m.p50_s is None else 1

    phases = [phase(m) for m in placed]
    assert phases == sorted(phases)
    measured = [m.p50_s for m in placed if phase(m) == 1]
    assert measured == sorted(measured)  # type: ignore[type-var]


@given(groups, st.sampled_from(TASK_CLASSES))
def test_task_never_escalates_cost_above_the_first_member_except_interactive(
    members: list[Member], task: str
) -> None:
    ordering = by_task(members, task)  # type: ignore[arg-type]
    assert sorted(ordering.names + [r.name for r in ordering.excluded]) == sorted(_names(members))
    ceiling = COST_RANK[members[0].cost_tier]
    by_name = {m.name: m for m in members}
    if task == "interactive":
        assert ordering.names == _names(members) and not ordering.excluded
        return
    assert members[0].name in ordering.names  # the default model is never left out
    assert all(COST_RANK[by_name[n].cost_tier] <= ceiling for n in ordering.names)
    assert all(COST_RANK[by_name[r.name].cost_tier] > ceiling for r in ordering.excluded)
    first = COST_RANK if task != "classification" else LATENCY_RANK
    tier = "cost_tier" if task != "classification" else "latency_tier"
    ranks = [first[getattr(by_name[n], tier)] for n in ordering.names]
    assert ranks == sorted(ranks)


@settings(max_examples=15, deadline=None)  # each example draws 3000 orders
@given(st.lists(st.floats(0.5, 10), min_size=2, max_size=5))
def test_weighted_draws_the_first_member_in_proportion_to_its_weight(
    weights: list[float],
) -> None:
    members = [Member(f"m{i}", w) for i, w in enumerate(weights)]
    rng = random.Random(3)
    draws = 3000
    firsts = [weighted(members, rng).names[0] for _ in range(draws)]
    total = sum(weights)
    for m in members:
        expected = m.weight / total
        assert abs(firsts.count(m.name) / draws - expected) < 0.05
