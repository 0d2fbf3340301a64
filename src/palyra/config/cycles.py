"""Fallback cycle detection: a pure function on a name -> fallbacks graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each distinct cycle once, closed and starting at its earliest node: ``[a, b, a]``.

    Edges to names that are not nodes are ignored (those are "missing model" errors). Every
    graph with a cycle yields at least one; an acyclic graph yields none.
    """
    order = {name: i for i, name in enumerate(graph)}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []
    seen: set[tuple[str, ...]] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if nxt not in order:
                continue
            if state.get(nxt) == 1:
                loop = path[path.index(nxt) :]
                start = min(range(len(loop)), key=lambda i: order[loop[i]])
                canonical = tuple(loop[start:] + loop[:start])
                if canonical not in seen:
                    seen.add(canonical)
                    cycles.append([*canonical, canonical[0]])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name)
    return cycles
