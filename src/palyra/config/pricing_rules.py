"""``[pricing]`` cross-checks the schema cannot make: an entry's provider must exist and be of
the entry's kind, and no two entries may price the same model from the same day."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palyra.config.document import entries, known, section, text
from palyra.config.problems import Finding


def check_pricing(document: Mapping[str, Any]) -> list[Finding]:
    pricing = section(document, "pricing")
    items = pricing.get("models")
    if not isinstance(items, list):
        return []
    kinds: dict[str, str] = {}
    for _, table in entries(document, "providers"):
        pid, kind = text(table, "id"), text(table, "kind")
        if pid is not None and kind is not None:
            kinds[pid] = kind
    findings = []
    seen: dict[tuple[object, ...], int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        where = ("pricing", "models", i)
        kind, model, provider = text(item, "kind"), text(item, "model"), text(item, "provider")
        if provider is not None:
            if provider not in kinds:
                findings.append(
                    Finding(
                        (*where, "provider"),
                        f'names provider "{provider}", which does not exist (known: '
                        f"{known(sorted(kinds))}); fix it or drop provider to price the kind",
                    )
                )
            elif kind is not None and kinds[provider] != kind:
                findings.append(
                    Finding(
                        (*where, "kind"),
                        f'is "{kind}" but provider "{provider}" is of kind "{kinds[provider]}"; '
                        "make them agree",
                    )
                )
        key = (kind, provider, model, str(item.get("effective_from")))
        if model is not None and key in seen:
            findings.append(
                Finding(
                    where,
                    f'prices {kind} model "{model}" from {key[3]} again (pricing.models['
                    f"{seen[key]}] already does); keep one entry per model and day",
                )
            )
        seen.setdefault(key, i)
    return findings
