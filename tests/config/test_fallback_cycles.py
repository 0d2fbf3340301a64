"""``find_cycles``: self-loops, long cycles, several cycles, and none in an acyclic graph."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from palyra.config.cycles import find_cycles


def test_self_loop_is_a_cycle_of_one() -> None:
    assert find_cycles({"a": ["a"]}) == [["a", "a"]]


def test_two_model_cycle_starts_at_the_first_declared_model() -> None:
    assert find_cycles({"b": ["a"], "a": ["b"]}) == [["b", "a", "b"]]


def test_longer_cycle_is_printed_in_full() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["d"], "d": ["b"]}
    assert find_cycles(graph) == [["b", "c", "d", "b"]]


def test_separate_cycles_are_each_reported_once() -> None:
    graph = {"a": ["b"], "b": ["a"], "c": ["c"], "d": ["a", "c"]}
    assert find_cycles(graph) == [["a", "b", "a"], ["c", "c"]]


def test_acyclic_graph_and_missing_targets_give_no_cycle() -> None:
    assert find_cycles({"a": ["b", "missing"], "b": ["c"], "c": []}) == []


_names = st.sampled_from(list("abcdef"))


@given(st.dictionaries(_names, st.lists(_names, max_size=3)))
def test_cycles_are_found_exactly_when_the_graph_has_one(graph: dict[str, list[str]]) -> None:
    cycles = find_cycles(graph)
    edges = {name: [t for t in targets if t in graph] for name, targets in graph.items()}
    try:
        tuple(TopologicalSorter(edges).static_order())
        has_cycle = False
    except CycleError:
        has_cycle = True
    assert bool(cycles) == has_cycle
    for cycle in cycles:
        assert cycle[0] == cycle[-1]
        for src, dst in pairwise(cycle):
            assert dst in graph[src]
