"""``[limits]`` cross-checks: a provider's limits must name a configured provider, and an
allowlist (``models``) configured models, aliases or routing groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palyra.config.document import entries, known, section, text, texts
from palyra.config.problems import Finding


def check_limits(document: Mapping[str, Any]) -> list[Finding]:
    limits = section(document, "limits")
    providers = [p for _, t in entries(document, "providers") if (p := text(t, "id"))]
    names: list[str] = []
    for _, model in entries(document, "models"):
        if (name := text(model, "id")) is not None:
            names.append(name)
        names.extend(alias for _, alias in texts(model, "aliases"))
    names.extend(g for _, group in entries(document, "routing_groups") if (g := text(group, "id")))
    findings = []
    for scope in ("agents", "providers"):
        for ident, spec in section(limits, scope).items():
            where = ("limits", scope, ident)
            if scope == "providers" and ident not in providers:
                findings.append(
                    Finding(
                        where,
                        f'names provider "{ident}", which does not exist (known: '
                        f"{known(providers)}); fix the id",
                    )
                )
            if not isinstance(spec, Mapping):
                continue
            for i, name in texts(spec, "models"):
                if name not in names:
                    findings.append(
                        Finding(
                            (*where, "models", i),
                            f'names model "{name}", which is not a configured model, alias or '
                            f"routing group (known: {known(names)})",
                        )
                    )
    return findings
