"""What ``palyra serve`` refuses in ``[[model_provider.routing_groups]]``, as one function that
the config check (on the raw document) and the model registry (on a built config) both run.

A group is a name clients send as ``model``; its members are model ids, aliases or other
groups. Refused: a name already taken, an unknown member, groups that contain each other, a
weight for a non-member or on a strategy that draws no weights, and ``least_busy`` over a
provider whose load is not counted (no ``max_concurrency``, so no leases).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from palyra.config.cycles import find_cycles
from palyra.config.document import MP, entries, known, text
from palyra.config.problems import Finding, KeyPath
from palyra.config.references import model_names
from palyra.config.schema import RoutingGroupConfig

GroupProblem = tuple[int, tuple[str | int, ...], str]
"""``(group index, key path inside the group, message)``."""


def group_problems(
    groups: Sequence[RoutingGroupConfig],
    names: Mapping[str, str],
    provider_of: Mapping[str, str],
    limited_providers: frozenset[str],
) -> list[GroupProblem]:
    """Every problem in ``groups``. ``names``: each model id and alias -> its model id;
    ``provider_of``: model id -> provider id; ``limited_providers``: those with
    ``max_concurrency``."""
    problems: list[GroupProblem] = []
    ids = [g.id for g in groups]
    index_of: dict[str, int] = {}
    for i, group in enumerate(groups):
        if group.id in names:
            owner = names[group.id]
            what = "model id" if owner == group.id else f'an alias of model "{owner}"'
            problems.append(
                (
                    i,
                    ("id",),
                    f'routing group id "{group.id}" is already {what}; each name a client '
                    "sends must mean one thing, so rename the group",
                )
            )
        elif group.id in index_of:
            problems.append(
                (
                    i,
                    ("id",),
                    f'routing group id "{group.id}" is already used by routing_groups'
                    f"[{index_of[group.id]}]; give each group its own id",
                )
            )
        else:
            index_of[group.id] = i
    models = sorted(set(names.values()))
    for i, group in enumerate(groups):
        where = f'routing group "{group.id}"'
        for j, member in enumerate(group.members):
            if member not in names and member not in index_of:
                problems.append(
                    (
                        i,
                        ("members", j),
                        f'{where} lists member "{member}", which is neither a model nor a '
                        f"routing group (models: {known(models)}; groups: {known(ids)})",
                    )
                )
        if group.weights and group.strategy != "weighted":
            problems.append(
                (
                    i,
                    ("weights",),
                    f'{where} sets weights, but its strategy is "{group.strategy}", which '
                    'draws none; set strategy = "weighted" or remove weights',
                )
            )
        for name in group.weights:
            if name not in group.members:
                problems.append(
                    (
                        i,
                        ("weights", name),
                        f'{where} gives a weight to "{name}", which is not one of its members '
                        f"({', '.join(group.members)}); weigh members only",
                    )
                )
        if group.strategy == "least_busy":
            for j, member in enumerate(group.members):
                model_id = names.get(member)
                provider = provider_of.get(model_id or "")
                if provider is not None and provider not in limited_providers:
                    problems.append(
                        (
                            i,
                            ("members", j),
                            f'{where} is least_busy, but member "{member}" is on provider '
                            f'"{provider}", which sets no max_concurrency, so its load is not '
                            "counted; set max_concurrency on that provider or pick another "
                            "strategy",
                        )
                    )
    graph = {g.id: [m for m in g.members if m in index_of] for g in groups if g.id not in names}
    for cycle in find_cycles(graph):
        problems.append(
            (
                index_of[cycle[0]],
                ("members",),
                f"routing groups contain each other: {' -> '.join(cycle)}; remove one of "
                "these members",
            )
        )
    return problems


def check_groups(document: Mapping[str, Any]) -> list[Finding]:
    """The findings of :func:`group_problems` for the groups that pass the schema (the schema
    check reports the others)."""
    groups: list[tuple[int, RoutingGroupConfig]] = []
    for i, table in entries(document, "routing_groups"):
        with contextlib.suppress(ValidationError):
            groups.append((i, RoutingGroupConfig.model_validate(table)))
    if not groups:
        return []
    provider_of: dict[str, str] = {}
    for _, table in entries(document, "models"):
        model_id, provider = text(table, "id"), text(table, "provider")
        if model_id is not None and provider is not None:
            provider_of.setdefault(model_id, provider)
    limited = frozenset(
        provider_id
        for _, table in entries(document, "providers")
        if (provider_id := text(table, "id")) is not None
        and isinstance(table.get("max_concurrency"), int)
    )
    findings: list[Finding] = []
    for i, key, message in group_problems(
        [g for _, g in groups], model_names(document), provider_of, limited
    ):
        path: KeyPath = (MP, "routing_groups", groups[i][0], *key)
        findings.append(Finding(path, message))
    return findings
