"""Cross-reference checks on ``[model_provider]``: ids, providers, fallbacks, defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palyra.config.cycles import find_cycles
from palyra.config.document import MP, entries, known, section, text, texts
from palyra.config.problems import Finding, KeyPath, format_path
from palyra.config.schema import ModelProviderRegistryConfig

KIND_CAPABILITIES: dict[str, frozenset[str]] = {
    "openai": frozenset({"chat", "tools", "vision", "json", "embeddings", "transcription"}),
    "anthropic": frozenset({"chat", "tools", "vision", "json"}),
    "openai_compatible": frozenset(
        {"chat", "tools", "vision", "json", "embeddings", "transcription"}
    ),
    "deterministic": frozenset({"chat", "tools", "vision", "json", "embeddings", "transcription"}),
}
"""What each provider kind can serve; a model asking for more is a config error."""

DEFAULT_KEYS: tuple[tuple[str, str, str], ...] = (
    ("default_chat_model", "chat", "chat"),
    ("default_embeddings_model", "embeddings", "embeddings"),
    ("default_transcription_model", "transcription", "transcription"),
)


def _unique_ids(document: Mapping[str, Any], key: str, noun: str) -> list[Finding]:
    findings: list[Finding] = []
    first: dict[str, int] = {}
    for i, table in entries(document, key):
        name = text(table, "id")
        if name is None:
            continue
        if name in first:
            other = format_path((MP, key, first[name]))
            findings.append(
                Finding(
                    (MP, key, i, "id"),
                    f'{noun} id "{name}" is already used by {other}; give each {noun} its own id',
                )
            )
        else:
            first[name] = i
    return findings


def model_names(document: Mapping[str, Any]) -> dict[str, str]:
    """Every name a client may send (ids and aliases) -> the model id it means (first wins)."""
    names: dict[str, str] = {}
    for _, table in entries(document, "models"):
        model_id = text(table, "id")
        if model_id is None:
            continue
        names.setdefault(model_id, model_id)
    for _, table in entries(document, "models"):
        model_id = text(table, "id")
        if model_id is not None:
            for _, alias in texts(table, "aliases"):
                names.setdefault(alias, model_id)
    return names


def _aliases(document: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    owner: dict[str, str] = {}
    for _, table in entries(document, "models"):
        model_id = text(table, "id")
        if model_id is not None:
            owner.setdefault(model_id, f'model id "{model_id}"')
    for i, table in entries(document, "models"):
        model_id = text(table, "id")
        for j, alias in texts(table, "aliases"):
            if alias in owner:
                findings.append(
                    Finding(
                        (MP, "models", i, "aliases", j),
                        f'alias "{alias}" of model "{model_id}" clashes with {owner[alias]}; '
                        "each name must point at one model",
                    )
                )
            else:
                owner[alias] = f'alias "{alias}" of model "{model_id}"'
    return findings


def _providers_and_capabilities(document: Mapping[str, Any]) -> list[Finding]:
    kinds: dict[str, str | None] = {}
    for _, table in entries(document, "providers"):
        provider_id = text(table, "id")
        if provider_id is not None:
            kinds.setdefault(provider_id, text(table, "kind"))
    findings: list[Finding] = []
    for i, table in entries(document, "models"):
        model_id = text(table, "id") or f"#{i}"
        provider = text(table, "provider")
        if provider is None:
            continue
        if provider not in kinds:
            findings.append(
                Finding(
                    (MP, "models", i, "provider"),
                    f'model "{model_id}" names provider "{provider}", which does not exist '
                    f"(known: {known(list(kinds))})",
                )
            )
            continue
        kind = kinds[provider]
        can = KIND_CAPABILITIES.get(kind or "")
        if can is None:
            continue
        for j, capability in texts(table, "capabilities"):
            if capability in KIND_CAPABILITIES["openai"] and capability not in can:
                findings.append(
                    Finding(
                        (MP, "models", i, "capabilities", j),
                        f'model "{model_id}" asks for {capability}, which provider "{provider}" '
                        f"(kind {kind}) cannot serve; move the model to a provider that can "
                        "(openai, openai_compatible) or drop the capability",
                    )
                )
    return findings


def _fallbacks(document: Mapping[str, Any]) -> list[Finding]:
    names = model_names(document)
    ids = [text(t, "id") for _, t in entries(document, "models")]
    known_ids = [i for i in ids if i is not None]
    findings: list[Finding] = []
    graph: dict[str, list[str]] = {}
    where: dict[str, KeyPath] = {}
    for i, table in entries(document, "models"):
        model_id = text(table, "id")
        targets: list[str] = []
        for j, name in texts(table, "fallbacks"):
            if name not in names:
                findings.append(
                    Finding(
                        (MP, "models", i, "fallbacks", j),
                        f'model "{model_id or f"#{i}"}" falls back to "{name}", which does not '
                        f"exist (known: {known(known_ids)})",
                    )
                )
            else:
                targets.append(names[name])
        if model_id is not None and model_id not in graph:
            graph[model_id] = targets
            where[model_id] = (MP, "models", i, "fallbacks")
    for cycle in find_cycles(graph):
        findings.append(
            Finding(
                where[cycle[0]],
                f"fallback cycle: {' -> '.join(cycle)}; remove one of these fallbacks",
            )
        )
    return findings


def _defaults(document: Mapping[str, Any], checked: set[str]) -> list[Finding]:
    """Each ``default_*_model`` key in ``checked`` must name a model that can do the job."""
    names = model_names(document)
    capabilities: dict[str, set[str]] = {}
    for _, table in entries(document, "models"):
        model_id = text(table, "id")
        if model_id is not None and model_id not in capabilities:
            value = table.get("capabilities", ["chat"])
            capabilities[model_id] = (
                {c for c in value if isinstance(c, str)} if isinstance(value, list) else set()
            )
    groups = _group_members(document)
    mp = section(document, MP)
    findings: list[Finding] = []
    for key, capability, noun in DEFAULT_KEYS:
        if key not in checked:
            continue
        name = mp.get(key, ModelProviderRegistryConfig.model_fields[key].default)
        if not isinstance(name, str):
            continue
        if name in groups and name not in names:
            reached = _models_of(name, groups, names)
            if not any(capability in capabilities.get(m, set()) for m in reached):
                findings.append(
                    Finding(
                        (MP, key),
                        f'default {noun} model "{name}" is a routing group with no member that '
                        f"can do {capability}; add one or pick another model",
                    )
                )
            continue
        if name not in names:
            findings.append(
                Finding(
                    (MP, key),
                    f'default {noun} model "{name}" does not exist '
                    f"(known: {known(list(capabilities))}); set {key} to one of them",
                )
            )
        elif capability not in capabilities.get(names[name], set()):
            have = ", ".join(sorted(capabilities.get(names[name], set()))) or "none"
            findings.append(
                Finding(
                    (MP, key),
                    f'default {noun} model "{name}" cannot do {capability} (its capabilities: '
                    f'{have}); add "{capability}" to its capabilities or pick another model',
                )
            )
    return findings


def _group_members(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each routing group id -> its member names (the group rules check them)."""
    found: dict[str, list[str]] = {}
    for _, table in entries(document, "routing_groups"):
        group_id = text(table, "id")
        if group_id is not None:
            found.setdefault(group_id, [m for _, m in texts(table, "members")])
    return found


def _models_of(name: str, groups: Mapping[str, list[str]], names: Mapping[str, str]) -> set[str]:
    """The model ids a routing group reaches through its members and member groups."""
    reached: set[str] = set()
    seen: set[str] = set()
    queue = [name]
    while queue:
        current = queue.pop()
        if current in seen:
            continue
        seen.add(current)
        for member in groups.get(current, []):
            if member in names:
                reached.add(names[member])
            elif member in groups:
                queue.append(member)
    return reached


def check_references(document: Mapping[str, Any], *, checked_defaults: set[str]) -> list[Finding]:
    """All cross-reference problems; ``checked_defaults``: the ``default_*_model`` keys to check."""
    return [
        *_unique_ids(document, "providers", "provider"),
        *_unique_ids(document, "models", "model"),
        *_aliases(document),
        *_providers_and_capabilities(document),
        *_fallbacks(document),
        *_defaults(document, checked_defaults),
    ]
