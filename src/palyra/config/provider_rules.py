"""What ``palyra serve`` refuses in a provider entry, as one list that the config check and the
provider registry both read, so ``palyra config check`` refuses exactly what start-up would.

Each rule is the code start-up runs: the base URL through
:func:`palyra.net.base_url.base_url_problem` (the upstream guard's ``check_base_url`` wraps the
same function), quirk names through :func:`quirks_from_names`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from palyra.config.document import MP, entries
from palyra.config.problems import Finding
from palyra.config.schema import ModelConfig, ProviderConfig
from palyra.net.base_url import base_url_problem
from palyra.providers.openai_compatible import quirks_from_names

KINDS_WITH_DEFAULT_URL = frozenset({"openai", "anthropic"})
LOCAL_KINDS = frozenset({"deterministic"})
KINDS_WITH_QUIRKS = frozenset({"openai_compatible"})
RESPONSES_KINDS = frozenset({"openai"})
"""The provider kinds whose models may say ``api = "responses"``."""


def _where(cfg: ProviderConfig) -> str:
    return f'provider "{cfg.id}" (kind {cfg.kind})'


def missing_base_url(cfg: ProviderConfig) -> str | None:
    if cfg.base_url or cfg.kind in KINDS_WITH_DEFAULT_URL or cfg.kind in LOCAL_KINDS:
        return None
    return (
        f"{_where(cfg)} has no base_url; set base_url to the server's OpenAI-style API root "
        '(e.g. "http://127.0.0.1:11434/v1") in [[model_provider.providers]] of palyra.toml'
    )


def base_url_refusal(cfg: ProviderConfig) -> str | None:
    """The upstream guard's message for this entry's ``base_url`` (``None`` when acceptable)."""
    if not cfg.base_url:
        return None
    problem = base_url_problem(cfg.base_url, allow_private=cfg.allow_private_base_url)
    return None if problem is None else f"provider {cfg.id!r}: {problem.message}"


def quirks_problem(cfg: ProviderConfig) -> str | None:
    if not cfg.quirks:
        return None
    if cfg.kind not in KINDS_WITH_QUIRKS:
        return (
            f"{_where(cfg)} sets quirks {cfg.quirks}, which only apply to kind "
            "openai_compatible; remove quirks or change the kind in palyra.toml"
        )
    try:
        quirks_from_names(cfg.quirks, where=f'provider "{cfg.id}" quirks')
    except ValueError as exc:
        return f"{exc}; fix quirks in [[model_provider.providers]] of palyra.toml"
    return None


def responses_api_problem(cfg: ProviderConfig, responses_models: frozenset[str]) -> str | None:
    """``responses_models``: the upstream model names of ``cfg`` configured with
    ``api = "responses"``; only some kinds have that API."""
    if not responses_models or cfg.kind in RESPONSES_KINDS:
        return None
    return (
        f'models {", ".join(sorted(responses_models))} say api = "responses", but their '
        f"{_where(cfg)} has no Responses API (only kind openai has); remove api from those "
        "[[model_provider.models]] in palyra.toml"
    )


def responses_models_of(cfg: ProviderConfig, models: list[ModelConfig]) -> frozenset[str]:
    return frozenset(
        m.upstream_model for m in models if m.provider == cfg.id and m.api == "responses"
    )


def provider_problems(cfg: ProviderConfig) -> list[tuple[str, str]]:
    """``(key, message)`` for everything start-up would refuse in ``cfg``, in start-up's order."""
    rules = (
        ("base_url", missing_base_url),
        ("base_url", base_url_refusal),
        ("quirks", quirks_problem),
    )
    return [(key, message) for key, rule in rules if (message := rule(cfg)) is not None]


def check_providers(document: Mapping[str, Any]) -> list[Finding]:
    """The findings of :func:`provider_problems` for each entry that passes the schema (the
    schema check reports the others)."""
    findings: list[Finding] = []
    models: list[tuple[int, ModelConfig]] = []
    for j, table in entries(document, "models"):
        with contextlib.suppress(ValidationError):
            models.append((j, ModelConfig.model_validate(table)))
    for i, table in entries(document, "providers"):
        try:
            cfg = ProviderConfig.model_validate(table)
        except ValidationError:
            continue
        for key, message in provider_problems(cfg):
            findings.append(Finding((MP, "providers", i, key), message))
        responses = responses_models_of(cfg, [m for _, m in models])
        refusal = responses_api_problem(cfg, responses)
        if refusal is not None:
            first = next(j for j, m in models if m.provider == cfg.id and m.api == "responses")
            findings.append(Finding((MP, "models", first, "api"), refusal))
    return findings
